"""pytest bootstrap for running the suite straight from a checkout (not part of the collection).

Python imports plugins as ``ansible_collections.zerodowntime.rollout.*``; a checkout is not
laid out that way, so we expose it through a symlinked collections root under ``.cache/``.
The offline amazon.aws copy (``.cache/deps/ansible_collections/amazon/aws``) goes on the path
after it, so unit tests can import ``ansible_collections.amazon.aws`` too.
"""

import contextlib
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
COLLECTIONS_ROOT = os.path.join(ROOT, ".cache", "collections")
_LINK = os.path.join(COLLECTIONS_ROOT, "ansible_collections", "zerodowntime", "rollout")

if not os.path.islink(_LINK):
    os.makedirs(os.path.dirname(_LINK), exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.symlink(ROOT, _LINK)

if COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, COLLECTIONS_ROOT)

# One ``ansible_collections`` namespace package spans both roots (ours first, then the deps).
DEPS_ROOT = os.path.join(ROOT, ".cache", "deps")
if os.path.isdir(os.path.join(DEPS_ROOT, "ansible_collections")) and DEPS_ROOT not in sys.path:
    sys.path.insert(sys.path.index(COLLECTIONS_ROOT) + 1, DEPS_ROOT)
