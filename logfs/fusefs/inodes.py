"""The inode table: FUSE inode numbers <-> topics and logs.

The namespace has exactly two levels below the root (inode 1): topics
(directories) and logs (regular files). A node keeps its parent inode and its
name, so renaming a topic renames it once and every log below follows.

Inode numbers are never reused within a mount: a log deleted and created again
under the same name gets a new number, so the kernel can never serve the old
file's cached pages for the new one.

Lookup counts follow the FUSE protocol (every successful lookup/create/readdirplus
entry adds one; ``forget`` subtracts). A node leaves the table when it is both
unlinked from the namespace and forgotten by the kernel.

Views (``web@since=1h``, views.py) are nodes of their own kind under their topic,
kept apart from the names ``readdir`` lists. A view name maps to the node of the
window it last resolved to; a lookup that resolves it to another window gets a new
node (a new inode number), and the old one lives on for the descriptors open on it
until the kernel forgets it. A view node leaves the table as soon as the kernel has
forgotten it: nothing else refers to it.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

import pyfuse3

from logfs.fusefs.views import ViewWindow

ROOT_INODE = pyfuse3.ROOT_INODE


class Kind(enum.Enum):
    ROOT = "root"
    TOPIC = "topic"
    LOG = "log"
    VIEW = "view"


@dataclass
class Node:
    ino: int
    kind: Kind
    parent: int
    name: str
    lookups: int = 0
    linked: bool = True
    # adapter-side counters (exposed by `logfs describe --json`)
    stats: dict[str, int] = field(default_factory=dict)
    # a view's window (Kind.VIEW only; replaced when its end settles)
    view: ViewWindow | None = None


class InodeTable:
    """Maps inode numbers to nodes and (parent, name) pairs to inode numbers."""

    def __init__(self) -> None:
        self._next = itertools.count(ROOT_INODE + 1)
        self._nodes: dict[int, Node] = {ROOT_INODE: Node(ROOT_INODE, Kind.ROOT, ROOT_INODE, "")}
        self._by_name: dict[tuple[int, str], int] = {}
        self._views: dict[tuple[int, str], int] = {}  # (topic inode, view name) -> inode

    def __getitem__(self, ino: int) -> Node:
        """The node for ``ino``; KeyError if the kernel sent an unknown inode."""
        return self._nodes[ino]

    def get(self, ino: int) -> Node | None:
        return self._nodes.get(ino)

    def child(self, parent: int, name: str) -> Node | None:
        ino = self._by_name.get((parent, name))
        return None if ino is None else self._nodes[ino]

    def ensure(self, parent: int, name: str, kind: Kind) -> Node:
        """The node for ``name`` under ``parent``, created if the table lacks it."""
        node = self.child(parent, name)
        if node is None or node.kind is not kind:
            if node is not None:
                self.unlink(parent, name)
            node = Node(next(self._next), kind, parent, name)
            self._nodes[node.ino] = node
            self._by_name[(parent, name)] = node.ino
        return node

    def unlink(self, parent: int, name: str) -> Node | None:
        """Detach ``name`` from ``parent`` (the node lives on until forgotten)."""
        ino = self._by_name.pop((parent, name), None)
        if ino is None:
            return None
        node = self._nodes[ino]
        node.linked = False
        if node.lookups <= 0:
            del self._nodes[ino]
        return node

    def move(self, parent: int, name: str, new_parent: int, new_name: str) -> None:
        ino = self._by_name.pop((parent, name), None)
        if ino is None:
            return
        self.unlink(new_parent, new_name)
        node = self._nodes[ino]
        node.parent, node.name = new_parent, new_name
        self._by_name[(new_parent, new_name)] = ino

    def path(self, node: Node) -> tuple[str, ...]:
        """``()`` for the root, ``(topic,)`` for a topic, ``(topic, log)`` for a log,
        ``(topic, view name)`` for a view."""
        if node.kind is Kind.ROOT:
            return ()
        if node.kind is Kind.TOPIC:
            return (node.name,)
        return (self._nodes[node.parent].name, node.name)

    def remember(self, node: Node) -> None:
        """Count one more kernel reference (an entry reply for this node)."""
        node.lookups += 1

    def forget(self, ino: int, count: int) -> None:
        node = self._nodes.get(ino)
        if node is None or ino == ROOT_INODE:
            return
        node.lookups -= count
        if node.lookups <= 0 and (not node.linked or node.kind is Kind.VIEW):
            del self._nodes[ino]
            if node.kind is Kind.VIEW and self._views.get((node.parent, node.name)) == ino:
                del self._views[(node.parent, node.name)]

    def view(self, parent: int, name: str, window: ViewWindow) -> Node:
        """The view node for ``name`` under topic ``parent`` showing ``window``: the
        one the name had if its window has the same key, else a new node (a new
        inode number), which the name maps to from now on."""
        ino = self._views.get((parent, name))
        node = None if ino is None else self._nodes.get(ino)
        if node is not None and node.view is not None and node.view.key == window.key:
            return node
        self.drop_view(parent, name)
        node = Node(next(self._next), Kind.VIEW, parent, name, view=window)
        self._nodes[node.ino] = node
        self._views[(parent, name)] = node.ino
        return node

    def drop_view(self, parent: int, name: str) -> None:
        """Forget which node the view ``name`` maps to (the node lives on until the
        kernel forgets it)."""
        ino = self._views.pop((parent, name), None)
        node = None if ino is None else self._nodes.get(ino)
        if node is not None:
            node.linked = False
            if node.lookups <= 0:
                del self._nodes[ino]

    def views(self) -> list[Node]:
        """Every view node the kernel may still use."""
        return [n for n in self._nodes.values() if n.kind is Kind.VIEW]

    def logs(self) -> list[Node]:
        """Every live log node (used after maintenance to invalidate caches)."""
        return [n for n in self._nodes.values() if n.kind is Kind.LOG and n.linked]
