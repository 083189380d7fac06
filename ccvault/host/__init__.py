"""The process and the machine: clocks, locks, durable writes, child processes, logs, systemd's
notify protocol and in-process events. Imports nothing of ccvault but `errors`."""
