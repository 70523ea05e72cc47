"""The lab twin: real Debian nodes (systemd-nspawn) with BMCs, watchdogs and fault injection."""
