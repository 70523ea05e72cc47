"""`pvecm` for twin nodes: create, add, addnode, status, nodes, expected, delnode, qdevice, apiver, updatecerts."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from pvelab.procfs import nodename
from pvelab.pve import certs
from pvelab.pve.cluster import corosync_conf as cc
from pvelab.pve.cluster import ops as cluster

ERROR_EXIT = 255  # PVE's CLI exits -1 on errors


def say(line: str) -> None:
    print(line, flush=True)


def link_args(parser: argparse.ArgumentParser) -> None:
    for number in range(cc.MAX_LINKS):
        parser.add_argument(f"--link{number}", dest=f"link{number}")
    parser.add_argument("--nodeid", type=int)
    parser.add_argument("--votes", type=int)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pvecm", description="Proxmox VE cluster manager")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="Generate new cluster configuration.")
    create.add_argument("clustername")
    link_args(create)
    create.add_argument("--token-coefficient", dest="token-coefficient", type=int)
    add = sub.add_parser("add", help="Adds the current node to an existing cluster.")
    add.add_argument("hostname")
    link_args(add)
    add.add_argument("--fingerprint")
    add.add_argument("--force", type=int, choices=[0, 1], nargs="?", const=1)
    add.add_argument("--use_ssh", type=int, choices=[0, 1], nargs="?", const=1)
    addnode = sub.add_parser("addnode", help="Adds a node to the cluster configuration. This call is for "
                                             "internal use.")
    addnode.add_argument("node")
    link_args(addnode)
    addnode.add_argument("--new_node_ip")
    addnode.add_argument("--apiversion", type=int)
    addnode.add_argument("--force", type=int, choices=[0, 1], nargs="?", const=1)
    sub.add_parser("status", help="Displays the local view of the cluster status.")
    sub.add_parser("nodes", help="Displays the local view of the cluster nodes.")
    expected = sub.add_parser("expected", help="Tells corosync a new value of expected votes.")
    expected.add_argument("expected", type=int)
    delnode = sub.add_parser("delnode", help="Removes a node from the cluster configuration.")
    delnode.add_argument("node")
    qdev = sub.add_parser("qdevice", help="QDevice related commands.")
    qsub = qdev.add_subparsers(dest="qdevice_command", required=True)
    qsetup = qsub.add_parser("setup", help="Setup the use of a QDevice")
    qsetup.add_argument("address")
    qsetup.add_argument("--force", type=int, choices=[0, 1], nargs="?", const=1)
    qsetup.add_argument("--network")
    qsub.add_parser("remove", help="Remove a configured QDevice")
    sub.add_parser("apiver", help="Return the version of the cluster join API available on this node.")
    sub.add_parser("updatecerts", help="Update node certificates (and generate all needed files/directories).")
    return parser


def status() -> int:
    conf = cluster.read_conf()
    if conf is None:
        print(cluster.NOT_IN_A_CLUSTER, file=sys.stderr)
        return 2
    totem = conf.get("totem", {})
    say("Cluster information\n-------------------")
    say(f"{'Name:':<18}{cc.cluster_name(conf)}")
    say(f"{'Config Version:':<18}{cc.config_version(conf)}")
    say(f"{'Transport:':<18}{totem.get('transport', 'knet')}")
    say(f"{'Secure auth:':<18}{totem.get('secauth', 'on')}\n")
    os.execvp("corosync-quorumtool", ["corosync-quorumtool", "-siH"])
    return 0


def exec_quorumtool(*args: str) -> int:
    if cluster.read_conf() is None:
        print(cluster.NOT_IN_A_CLUSTER, file=sys.stderr)
        return 2
    os.execvp("corosync-quorumtool", ["corosync-quorumtool", *args])
    return 0


def read_password(host: str) -> str:
    prompt = f"Please enter superuser (root) password for '{host}': "
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\n")  # like PVE: a non-TTY stdin gives the password as one line


def confirm_fingerprint(host: str) -> str:
    from pvelab.pve.apiclient import PinnedClient

    client = PinnedClient(host, None)
    client._connect().close()
    fingerprint = client.seen_fingerprint
    say(f"The authenticity of host '{host}' can't be established.")
    say(f"X509 SHA256 key fingerprint is {fingerprint}.")
    print("Are you sure you want to continue connecting (yes/no)? ", end="", flush=True)
    if sys.stdin.readline().strip() != "yes":
        raise cluster.ClusterError("Certificate verification failed.")
    return fingerprint


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The options the user gave, as the parameters the shared cluster code takes."""
    return {k: v for k, v in vars(args).items() if v is not None}


def add(args: argparse.Namespace) -> None:
    params = given(args)
    if args.use_ssh:
        cluster.join_over_ssh(args.hostname, params, say)
        return
    password = read_password(args.hostname)
    fingerprint = args.fingerprint or confirm_fingerprint(args.hostname)
    cluster.join(args.hostname, password, fingerprint, params, say)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "status":
            return status()
        if args.command == "nodes":
            return exec_quorumtool("-l")
        if args.command == "expected":
            return exec_quorumtool("-e", str(args.expected))
        if args.command == "apiver":
            say(str(cluster.JOIN_API_VERSION))
        elif args.command == "create":
            cluster.create(args.clustername, given(args), say)
        elif args.command == "add":
            add(args)
        elif args.command == "addnode":
            cluster.addnode(args.node, given(args), say)
        elif args.command == "qdevice":
            from pvelab.pve.cluster import qdevice

            if args.qdevice_command == "setup":
                qdevice.setup(args.address, bool(args.force), say)
            else:
                qdevice.remove(say)
        elif args.command == "delnode":
            cluster.delnode(args.node, say)
        elif args.command == "updatecerts":
            certs.ensure_node_cert(nodename())
    except (cluster.ClusterError, OSError) as exc:
        print(exc, file=sys.stderr)
        return ERROR_EXIT
    return 0
