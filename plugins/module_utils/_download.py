# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to the zerodowntime.rollout collection; not a public API, may change without notice.
"""Download a release archive (the ``fetch`` that the release modules hand to manage_release)."""

DOWNLOAD_TIMEOUT = 60
CHUNK = 1024 * 1024


def download(url, fileobj):
    """Write the body of ``url`` into ``fileobj`` with Ansible's URL code (TLS certificates are validated)."""
    # Imported here: most runs (local src, activation of an unpacked release, rollback) never download.
    from ansible.module_utils.urls import open_url

    response = open_url(url, timeout=DOWNLOAD_TIMEOUT, validate_certs=True, http_agent="zerodowntime.rollout")
    try:
        while True:
            chunk = response.read(CHUNK)
            if not chunk:
                break
            fileobj.write(chunk)
    finally:
        response.close()
