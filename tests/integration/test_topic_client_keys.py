"""The client's one topic key module (cli/topicbody.c over cli/topicring.c) as meshctl and its MCP server
use it: a member's `meshctl mcp` across key epochs (issue 22 on issue 20's MCP topic tools) reads each post
with the key of its epoch, asks for the key again when a push is of an epoch newer than any it holds, and
refuses to post while it holds only a stale key (docs/protocol.md §5.1); `meshctl topic history` marks an
old client's v1 body "unencrypted":true (§11)."""

import mbtest
from mbtest import new_id
from test_claude_e2e import notifications
from test_mcp import Mcp, text
from test_meshctl import make_c_member
from test_topics_meshctl import lines, topic_cmd


def test_a_members_mcp_reads_every_epoch_and_posts_only_under_the_current_one(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    acfg, (a_id, _) = make_c_member(tmp_path, pg, db, m, "alice")
    bcfg, (b_id, _) = make_c_member(tmp_path, pg, db, m, "bob")
    dave = m.add("dave")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    tid = lines(topic_cmd(acfg, env, "create", "ops", "--visibility", "private").stdout)[0]["id"]
    with db.cursor() as c:
        c.execute("INSERT INTO mesh.topic_member (topic_id, member_id) VALUES (%s, %s), (%s, %s)",
                  (tid, b_id, tid, dave.id))

    def copies(epoch):
        with db.cursor() as c:
            c.execute("SELECT member_id FROM mesh.topic_member_key WHERE topic_id = %s AND epoch = %s",
                      (tid, epoch))
            return sorted(r[0] for r in c.fetchall())

    def posts():
        with db.cursor() as c:
            c.execute("SELECT key_epoch, body_version FROM mesh.topic_message WHERE topic_id = %s "
                      "ORDER BY created_at", (tid,))
            return c.fetchall()

    lead = Mcp(b, acfg)  # alice's server, a lead's: seals each epoch for the others (cli/mcp_keys.c)
    bob = Mcp(b, bcfg)
    try:
        lead.start()
        mbtest.wait_until(lambda: copies(1) == sorted([a_id, b_id, dave.id]), 30, what="epoch 1 sealed to all")
        bob.start()
        topic_cmd(acfg, env, "post", "ops", "epoch one")
        got = notifications(bob, 20, until=lambda g: any("epoch one" in n["content"] for n in g))
        assert [n["content"] for n in got if n["meta"].get("topic") == "ops"] == ["epoch one"], got
        # the lead's server stops; dave is removed, the key moves on to epoch 2 which nobody holds yet
        assert lead.stop() == 0, lead.err
        with db.cursor() as c:
            c.execute("DELETE FROM mesh.topic_member WHERE topic_id = %s AND member_id = %s", (tid, dave.id))
            c.execute("UPDATE mesh.topic SET key_epoch = 2 WHERE id = %s", (tid,))
        r = bob.call("topic_post", topic="ops", message="under a stale key")
        assert r["isError"] and "moved on to epoch 2" in text(r), text(r)
        assert posts() == [(1, 2)], "nothing posted under the stale key"
        lead = Mcp(b, acfg)
        lead.start()
        mbtest.wait_until(lambda: copies(2) == sorted([a_id, b_id]), 30, what="the lead to start epoch 2")
        # a push of epoch 2: bob's server held only epoch 1's key, asks again and reads it
        topic_cmd(acfg, env, "post", "ops", "epoch two")
        got = notifications(bob, 20, until=lambda g: any("epoch two" in n["content"] for n in g))
        assert [n["content"] for n in got if n["meta"].get("topic") == "ops"] == ["epoch two"], (got, bob.err)
        r = bob.call("topic_post", topic="ops", message="bob under two")
        assert not r["isError"], text(r)
        mbtest.wait_until(lambda: len(posts()) == 3, 10, what="bob's post stored")
        assert posts() == [(1, 2), (2, 2), (2, 2)]
        r = bob.call("topic_read", topic="ops")
        assert not r["isError"], text(r)
        msgs = r["structuredContent"]["messages"]
        assert [(x["text"], x["encrypted"]) for x in msgs] == [
            ("epoch one", True), ("epoch two", True), ("bob under two", True)], msgs
    finally:
        bob.stop()
        lead.stop()


def test_meshctl_history_marks_v1_bodies_unencrypted_and_v2_ones_not(broker, mesh, pg, db, tmp_path):
    b = broker()
    m = mesh()
    acfg, (a_id, _) = make_c_member(tmp_path, pg, db, m, "alice")
    env = {"MESHBROKER_URL": b.ws_url + "/ws"}
    legacy = new_id()
    with db.cursor() as c:  # a topic from before keys: its bodies are v1
        c.execute("INSERT INTO mesh.topic (id, mesh_id, name, created_by) VALUES (%s, %s, 'legacy', %s)",
                  (legacy, m.id, a_id))
        c.execute("INSERT INTO mesh.topic_member (topic_id, member_id) VALUES (%s, %s)", (legacy, a_id))
    topic_cmd(acfg, env, "post", "legacy", "in clear")
    topic_cmd(acfg, env, "create", "sealed")
    topic_cmd(acfg, env, "post", "sealed", "not in clear")
    h = lines(topic_cmd(acfg, env, "history", "legacy").stdout)
    assert [(x["bodyVersion"], x["text"], x.get("unencrypted")) for x in h] == [(1, "in clear", True)], h
    h = lines(topic_cmd(acfg, env, "history", "sealed").stdout)
    assert [(x["bodyVersion"], x["text"], x.get("unencrypted")) for x in h] == [(2, "not in clear", None)], h
