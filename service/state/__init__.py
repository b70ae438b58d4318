"""The state: model, transaction-log store, replay, diff, migration, and the use
cases over the record."""
