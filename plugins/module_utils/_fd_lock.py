# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""A lock held on an open file descriptor, as a context manager: the descriptor is closed (which releases
``flock``) on the way out, and at once when taking the lock fails."""

import os


class FdLock:
    """Subclasses open the lock file (:meth:`open_fd`) and take the lock on it (:meth:`lock_fd`)."""

    fd = None

    def open_fd(self):
        raise NotImplementedError

    def lock_fd(self, fd):
        raise NotImplementedError

    def __enter__(self):
        fd = self.open_fd()
        try:
            self.lock_fd(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock
        self.fd = None
