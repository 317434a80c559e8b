-- 0015_claim_order_hosts — per sender -> recipient order across a move
-- between hosts (issue 24, acceptance 3; docs/protocol.md §3.4).
--
-- On one of several hosts a row that a connection of the member on another
-- host claimed stays held while that host's lease runs (≤ 10 s after it died
-- or was cut off), and mesh.delivery_mark_claim skips it.  Without this rule
-- the member's new connection was pushed the sender's later rows at once and
-- the held ones after them (found by tests/integration/test_multihost_netns.py).
-- Here the claim of a connection on a host (store_delivery_claim_hosts) does
-- not take a row while an earlier undelivered row of the same sender, one it
-- could itself take (the same session or none named), is held by a live
-- presence on another host: it waits until that row is delivered (marked by
-- its holder) or its holder's lease ends, when the sweep of this host rings
-- the member (an unheld undelivered row older than 1 s) and the rows come in
-- order.  A member with live connections on two hosts pays that wait (≤ ~2 s,
-- the holder's mark plus a sweep) only when the same sender's rows are split
-- between them.  One host (HOST_ID unset) never calls this: its claim is
-- mesh.delivery_mark_claim as before, and a local holder that dies is released
-- by its reaper at once.
CREATE OR REPLACE FUNCTION mesh.delivery_mark_claim_hosts(p_mark bigint[], p_member text, p_live text[],
                                                          p_remote text[], p_idle boolean, p_presence text,
                                                          p_limit integer, p_session text)
RETURNS TABLE (r_id bigint, r_message_id text, r_mesh_id text, r_sender_pubkey text, r_priority text,
               r_nonce text, r_ciphertext text, r_created_at text, r_topic_id text, r_body_version integer,
               r_sender_member_pubkey text, r_sender_member_id text, r_sender_name text,
               r_client_message_id text, r_request_fingerprint text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF cardinality(p_remote) = 0 THEN
    -- nobody on another host holds anything of this member's
    RETURN QUERY SELECT * FROM mesh.delivery_mark_claim(p_mark, p_member, p_live, p_idle, p_presence, p_limit,
                                                        p_session);
    RETURN;
  END IF;
  PERFORM set_config('synchronous_commit', 'off', true);
  IF cardinality(p_mark) > 0 THEN
    PERFORM mesh.delivery_mark(p_mark, p_presence);
  END IF;
  RETURN QUERY
  WITH held AS (SELECT q.sender_member_id AS sender, min(e.id) AS first_id
                  FROM mesh.delivery e JOIN mesh.message_queue q ON q.id = e.message_id
                 WHERE e.recipient_member_id = p_member AND e.delivered_at IS NULL
                   AND e.claimed_by = ANY(p_remote)
                   AND (e.recipient_session_pubkey IS NULL OR e.recipient_session_pubkey = p_session)
                 GROUP BY q.sender_member_id),
  c AS (SELECT d.id FROM mesh.delivery d JOIN mesh.message_queue q ON q.id = d.message_id
         WHERE d.recipient_member_id = p_member
           AND d.delivered_at IS NULL AND (d.claimed_by IS NULL OR NOT d.claimed_by = ANY(p_live || p_remote))
           AND (d.recipient_session_pubkey IS NULL OR d.recipient_session_pubkey = p_session)
           AND (d.priority = 'now' OR p_idle)
           AND NOT EXISTS (SELECT 1 FROM held h WHERE h.sender = q.sender_member_id AND h.first_id < d.id)
         ORDER BY d.id LIMIT p_limit FOR UPDATE OF d SKIP LOCKED)
  UPDATE mesh.delivery d SET claimed_by = p_presence, claimed_at = now()
  FROM c, mesh.message_queue q, mesh.member s
  WHERE d.id = c.id AND q.id = d.message_id AND s.id = q.sender_member_id
  RETURNING d.id, q.id, q.mesh_id, coalesce(q.sender_session_pubkey, s.peer_pubkey), q.priority, q.nonce,
            q.ciphertext, to_char(q.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), q.topic_id,
            q.body_version, s.peer_pubkey, s.id, coalesce(q.sender_name, s.display_name), q.client_message_id,
            q.request_fingerprint;
END
$$;
