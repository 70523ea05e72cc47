"""Cluster-wide views over every subsystem (/cluster/resources, /cluster/nextid): nodes, guests,
storages and their HA state in one list, so they sit above the subsystems they read."""

API_MODULES = ("api", "pools")
