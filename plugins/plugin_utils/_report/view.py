# Copyright: Contributors to the zerodowntime.rollout project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Private to the zerodowntime.rollout collection: no compatibility promise outside it.
"""The rollout report as data: the model's timelines turned into the JSON-able report dict (hosts in batch
order, each host's result, steps, seconds per step and out-of-rotation intervals; the totals). The JSON file, the
HTML page and the summary are all renderings of this dict."""

import time

from ansible_collections.zerodowntime.rollout.plugins.plugin_utils._report.steps import STEPS

SCHEMA_VERSION = 1


def rounded(t):
    return None if t is None else round(float(t), 3)


def segment_dict(seg):
    """One step stretch of a host (a ``model.Segment``) as the report lists it."""
    d = {
        "step": seg.name,
        "start": rounded(seg.start),
        "end": rounded(seg.end),
        "seconds": rounded(seg.seconds),
        "result": seg.result,
        "tasks": seg.tasks,
    }
    if seg.message is not None:
        d["message"] = seg.message
    return d


def host_view(model, rec, run_end):
    """One host of the report: its batch, result, steps, seconds per step and out-of-rotation intervals."""
    segs = rec.segments
    if rec.batch is not None:
        batch = rec.batch[1]
    elif not model.any_batched and rec.plain_batch is not None:
        batch = rec.plain_batch[1]
    else:
        batch = None
    # The playbook runs preflight and prepare (unpack) for every host before the first batch: a host
    # that never reached its batch did nothing else; one that reached it and only ran preflight
    # tasks there was skipped (already on the target version).
    work = [s for s in segs if s.name not in ("preflight", "unpack")]
    skipped = not rec.failed and batch is not None and all(s.name == "preflight" for s in segs)
    if rec.failed:
        result = "failed"
    elif rec.rolled_back:
        result = "rolled_back"
    elif skipped:
        result = "skipped"
    elif not segs or (batch is None and not work):
        result = "not_reached"
    elif any(s.result == "changed" for s in segs):
        result = "changed"
    else:
        result = "ok"
    intervals = []
    out_secs = 0.0
    for start, end, _measured in rec.out:
        stop = end if end is not None else run_end
        out_secs += max(0.0, stop - start)
        intervals.append({"start": rounded(start), "end": rounded(stop), "back_in_rotation": end is not None})
    step_seconds = {}
    for s in segs:
        step_seconds[s.name] = step_seconds.get(s.name, 0.0) + s.seconds
    start = segs[0].start if segs else None
    end = max(s.end for s in segs) if segs else None
    return {
        "name": rec.name,
        "batch": batch,
        "result": result,
        "skipped": skipped,
        "rolled_back": rec.rolled_back,
        "failed": rec.failed,
        "message": rec.message,
        "start": rounded(start),
        "end": rounded(end),
        "seconds": rounded(end - start) if segs else 0.0,
        "out_of_rotation": {"seconds": rounded(out_secs) if rec.out else None, "intervals": intervals},
        "step_seconds": {k: rounded(v) for k, v in sorted(step_seconds.items(), key=lambda kv: STEPS.index(kv[0]))},
        "steps": [segment_dict(s) for s in segs],
    }


def ordered_hosts(model):
    """The model's host records in report order: by batch, then in the order they first ran a step."""

    def key(rec):
        if rec.batch is not None:
            return (0, rec.batch[1], rec.order)
        return (1, 0, rec.order)

    return sorted(model.hosts.values(), key=key)


def report_dict(model):
    """The whole report from a ``model.RolloutModel`` (its run end, or now while it runs)."""
    end = model.end if model.end is not None else time.time()
    start = model.start if model.start is not None else end
    hosts = {}
    for rec in ordered_hosts(model):
        hosts[rec.name] = host_view(model, rec, end)
    counts = dict.fromkeys(("ok", "changed", "skipped", "failed", "rolled_back", "not_reached"), 0)
    step_totals = {}
    outs = []
    for h in hosts.values():
        counts[h["result"]] += 1
        for k, v in h["step_seconds"].items():
            step_totals[k] = step_totals.get(k, 0.0) + v
        if h["out_of_rotation"]["seconds"] is not None:
            outs.append(h["out_of_rotation"]["seconds"])
    # Without any serial play (the role in a play of its own), the first play is the one batch. A serial
    # batch in which no host started the role (a later serial play of the playbook) is not listed.
    field = "hosts" if model.any_batched else "plain"
    batched = [b for b in model.batches if b["batched"] and b["hosts"]] if model.any_batched else model.batches[:1]
    batches = []
    for b in batched:
        batches.append(
            {
                "play": b["play"],
                "number": b["number"],
                "start": rounded(b["start"]),
                "end": rounded(b.get("end", end)),
                "hosts": list(b[field]),
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "playbook": model.playbook,
        "start": rounded(start),
        "end": rounded(end),
        "seconds": rounded(end - start),
        "steps": list(STEPS),
        "batches": batches,
        "hosts": hosts,
        "totals": dict(
            counts,
            hosts=len(hosts),
            batches=len(batches),
            out_of_rotation_seconds=rounded(sum(outs)),
            max_out_of_rotation_seconds=rounded(max(outs)) if outs else None,
            step_seconds={k: rounded(step_totals[k]) for k in STEPS if k in step_totals},
        ),
    }
