"""The preflight decision of the rolling_update role: roll, skip or refuse one host."""

from ansible_collections.zerodowntime.rollout.plugins.filter.host_decision import host_decision

OPTS = {
    "host": "app1",
    "version": "v2",
    "lb": "haproxy",
    "admin_down": "fail",
    "retry_rolled_back": False,
    "backend": "app",
    "server": "app1",
}


def app(current="v1", ready=None, rolled_back=(), rolled_back_at=None):
    return {
        "current": current,
        "on_target": current == "v2",
        "ready": ready,
        "rolled_back": list(rolled_back),
        "rolled_back_at": rolled_back_at,
    }


def lb(item="localhost", admin_state="ready", status="UP", found=True, record=None, failed=None):
    if failed:
        return {"item": item, "failed": True, "msg": failed}
    member = {
        "socket": "/run/haproxy/admin.sock",
        "found": found,
        "status": status if found else None,
        "admin_state": admin_state if found else None,
        "in_rotation": found and admin_state == "ready" and status == "UP",
    }
    return {"item": item, "members": [member], "record": record}


def decide(a, lbs, **opts):
    return host_decision(a, {"results": lbs}, dict(OPTS, **opts))


def test_a_host_on_the_old_release_is_rolled():
    d = decide(app(), [lb()])
    assert d["action"] == "roll" and "runs v1" in d["msg"] and d["in_rotation"] is True


def test_a_done_host_is_skipped_and_only_when_ready_and_in_rotation():
    assert decide(app("v2", ready=True), [lb()])["action"] == "skip"
    assert decide(app("v2", ready=False), [lb()])["action"] == "roll"
    resumed = decide(app("v2", ready=True), [lb(admin_state="drain", status="DRAIN", record={"server": "app1"})])
    assert resumed["action"] == "roll" and resumed["resumed"] and "drained by an earlier rollout" in resumed["msg"]


def test_every_unreachable_lb_is_named_and_refused():
    d = decide(app(), [lb("lb1", failed="Connection refused by /a"), lb("lb2", failed="timed out")])
    assert d["action"] == "refuse"
    assert "[lb1] Connection refused by /a [lb2] timed out" in d["msg"] and "Refused in preflight" in d["msg"]


def test_an_unknown_server_is_refused():
    d = decide(app(), [lb(found=False)])
    assert d["action"] == "refuse" and "does not know server app/app1 on: localhost:/run/haproxy/admin.sock" in d["msg"]


def test_someone_elses_drain_follows_admin_down():
    foreign = [lb(admin_state="maint", status="MAINT")]
    refused = decide(app(), foreign)
    assert refused["action"] == "refuse" and "app1 is out of rotation (maint)" in refused["msg"]
    assert "not by this collection" in refused["msg"]
    assert decide(app(), foreign, admin_down="skip")["action"] == "skip"
    assert decide(app(), foreign, admin_down="roll")["action"] == "roll"
    # Our own resume record makes it ours: completed, not refused.
    ours = [lb(admin_state="maint", status="MAINT", record={"server": "app1"})]
    assert decide(app(), ours)["action"] == "roll"


def test_a_rolled_back_release_is_refused_unless_retried():
    rb = app(rolled_back=["v2"], rolled_back_at="2026-12-03T10:00:00Z")
    d = decide(rb, [lb()])
    assert d["action"] == "refuse" and "was rolled back on it at 2026-12-03T10:00:00Z" in d["msg"]
    assert "(it serves v1)" in d["msg"] and "left drained" not in d["msg"]
    drained = decide(rb, [lb(admin_state="drain", status="DRAIN", record={"server": "app1"})])
    assert "left drained by an interrupted run: roll out the release it serves (v1)" in drained["msg"]
    assert decide(rb, [lb()], retry_rolled_back=True)["action"] == "roll"


def test_without_a_load_balancer_or_on_aws():
    assert decide(app("v2", ready=True), [], lb="none")["action"] == "skip"
    assert decide(app("v2", ready=True), [], lb="elbv2", aws_in_rotation=False)["action"] == "roll"
    assert decide(app("v2", ready=True), [], lb="elbv2", aws_in_rotation=True)["action"] == "skip"


def aws_read(in_rotation=True, places=1, record=None, target="i-0123456789abcdef0", searched=None, failed=None):
    """What rotation state=read returns with an AWS provider (only what the decision reads)."""
    if failed:
        return {"failed": True, "msg": failed}
    return {
        "provider": "elbv2",
        "target_id": target,
        "searched": searched,
        "in_rotation": in_rotation,
        "places": [{"target_group_name": "tg-web", "port": 80}] * places,
        "record": record,
    }


def test_aws_read_result_decides_in_rotation_and_resume():
    done = app("v2", ready=True)
    assert decide(done, [], lb="elbv2", aws=aws_read())["action"] == "skip"
    out = decide(done, [], lb="elbv2", aws=aws_read(in_rotation=False))
    assert out["action"] == "roll" and out["resumed"] is False and "is not in rotation everywhere" in out["msg"]
    # Taken out by an interrupted rollout (its record), registered nowhere: rolled, to put it back.
    resumed = decide(done, [], lb="elbv2", aws=aws_read(in_rotation=False, places=0, record={"places": ["x"]}))
    assert (
        resumed["action"] == "roll" and resumed["resumed"] is True and "drained by an earlier rollout" in resumed["msg"]
    )
    # The read wins over the older boolean options.
    assert decide(done, [], lb="elbv2", aws=aws_read(in_rotation=False), aws_in_rotation=True)["action"] == "roll"


def test_aws_target_registered_nowhere_without_a_record_is_refused_before_the_app_is_read():
    out = decide(None, [], lb="elbv2", aws=aws_read(in_rotation=False, places=0, searched=["tg-a", "tg-b"]))
    assert out["action"] == "refuse"
    assert out["msg"].startswith("i-0123456789abcdef0 (app1) is not registered with any target group of tg-a, tg-b.")
    classic = decide(app(), [], lb="elb_classic", aws=aws_read(in_rotation=False, places=0))
    assert classic["action"] == "refuse" and "is not registered with any Classic ELB." in classic["msg"]


def test_aws_read_that_failed_is_refused_with_its_message():
    out = decide(None, [], lb="elbv2", aws=aws_read(failed="Target group(s) not found: tg-x."))
    assert (
        out["action"] == "refuse" and "AWS could not be read for app1: Target group(s) not found: tg-x." in out["msg"]
    )


def test_aws_read_is_ignored_for_haproxy_and_when_skipped():
    assert decide(app("v2", ready=True), [lb()], aws=aws_read(places=0))["action"] == "skip"
    skipped = {"skipped": True}
    assert decide(app("v2", ready=True), [], lb="elbv2", aws=skipped, aws_in_rotation=True)["action"] == "skip"


def test_aws_read_comes_from_the_looped_read_the_role_registers():
    """The role reads AWS with the same looped task as HAProxy (one item: rolling_update_aws_delegate_to)."""
    read = dict(aws_read(in_rotation=False), item="localhost")
    out = decide(app("v2", ready=True), [read], lb="elbv2")
    assert out["action"] == "roll" and "is not in rotation everywhere" in out["msg"]
    assert out["aws"] == {"places": read["places"], "rows": []}
    assert out["lbs"] == []  # an AWS read is not an HAProxy row
    refused = decide(None, [dict(aws_read(places=0, searched=["tg-a"]), item="localhost")], lb="elbv2")
    assert refused["action"] == "refuse" and "is not registered with any target group of tg-a." in refused["msg"]
    failed = [{"item": "localhost", "failed": True, "msg": "no credentials."}]
    assert "AWS could not be read for app1: no credentials." in decide(None, failed, lb="elb_classic")["msg"]
    # A skipped loop (no load balancer read) falls back to the boolean options.
    skipped = host_decision(
        app("v2", ready=True), {"results": [], "skipped": True}, dict(OPTS, lb="elbv2", aws_in_rotation=True)
    )
    assert skipped["action"] == "skip"


def test_a_weights_record_left_by_an_interrupted_weighted_canary_is_reported():
    scaled = dict(lb(), weights_record={"backend": "app", "weights": {"a.sock": {"app1": 1, "app2": 1}}})
    assert decide(app("v2", ready=True), [lb(), scaled])["weights_record"] is True
    assert decide(app("v2", ready=True), [lb()])["weights_record"] is False
    assert decide(None, [scaled], lb="elbv2", aws_in_rotation=True)["weights_record"] is False


def batch_read(item="localhost", **servers):
    """A rotation state=read with batch: the run_once host's own fields, and one part per server of the batch."""
    parts = {name: lb(item, **kw) for name, kw in servers.items()}
    first = next(iter(parts.values()))
    return dict(first, batch_reads={name: {k: v for k, v in p.items() if k != "item"} for name, p in parts.items()})


def test_a_batch_read_answers_with_this_hosts_server_only():
    read = batch_read(app0={}, app1={"admin_state": "maint", "status": "MAINT"})
    d = decide(app(), [read])
    assert d["action"] == "refuse" and "out of rotation (maint)" in d["msg"]
    assert decide(app(), [read], server="app0", host="app0")["action"] == "roll"


def test_a_batch_read_without_this_hosts_server_is_an_lb_that_did_not_answer():
    d = decide(app(), [batch_read("lb1", app0={})])
    assert d["action"] == "refuse" and "[lb1] the batch read has no answer for server app1" in d["msg"]


def test_a_failed_batch_read_is_named_for_every_host():
    failed = dict(lb("lb1", failed="Connection refused by /a"), batch_reads=None)
    d = decide(app(), [failed])
    assert d["action"] == "refuse" and "[lb1] Connection refused by /a" in d["msg"]
