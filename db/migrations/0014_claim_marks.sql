-- 0014_claim_marks — the recipient's claim carries the marks (issue 23,
-- docs/design.md "When a push counts as delivered"): the pushes whose last
-- byte the recipient's TCP acknowledged since the previous claim are marked
-- delivered in the transaction of the next claim, one statement per wake
-- instead of a claim and a mark.
--
-- p_mark: delivery ids of p_presence's acknowledged pushes ('{}' for none),
-- marked with mesh.delivery_mark's rules (0004: only rows p_presence holds);
-- then the claim of mesh.delivery_claim_session (0005), unchanged.  The
-- transaction commits without waiting for its WAL flush, like the claim
-- alone did: a PostgreSQL crash before the flush (the next synchronous
-- commit of any session, or the WAL writer within 3 × wal_writer_delay)
-- loses the claim and the marks together, and the rows are pushed again with
-- the same messageId (never lost: a mark only ever follows the push it
-- records).  A worker that dies before its next claim or its idle flush
-- repeats its unmarked pushes the same way (docs/protocol.md §3.4).
CREATE OR REPLACE FUNCTION mesh.delivery_mark_claim(p_mark bigint[], p_member text, p_live text[], p_idle boolean,
                                                    p_presence text, p_limit integer, p_session text)
RETURNS TABLE (r_id bigint, r_message_id text, r_mesh_id text, r_sender_pubkey text, r_priority text,
               r_nonce text, r_ciphertext text, r_created_at text, r_topic_id text, r_body_version integer,
               r_sender_member_pubkey text, r_sender_member_id text, r_sender_name text,
               r_client_message_id text, r_request_fingerprint text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  IF cardinality(p_mark) > 0 THEN
    PERFORM mesh.delivery_mark(p_mark, p_presence);
  END IF;
  -- mesh.delivery_claim_session's statement (0005), here rather than called:
  -- a nested set-returning call would copy every row once more
  RETURN QUERY
  WITH c AS (SELECT d.id FROM mesh.delivery d WHERE d.recipient_member_id = p_member
             AND d.delivered_at IS NULL AND (d.claimed_by IS NULL OR NOT d.claimed_by = ANY(p_live))
             AND (d.recipient_session_pubkey IS NULL OR d.recipient_session_pubkey = p_session)
             AND (d.priority = 'now' OR p_idle) ORDER BY d.id LIMIT p_limit FOR UPDATE SKIP LOCKED)
  UPDATE mesh.delivery d SET claimed_by = p_presence, claimed_at = now()
  FROM c, mesh.message_queue q, mesh.member s
  WHERE d.id = c.id AND q.id = d.message_id AND s.id = q.sender_member_id
  RETURNING d.id, q.id, q.mesh_id, coalesce(q.sender_session_pubkey, s.peer_pubkey), q.priority, q.nonce,
            q.ciphertext, to_char(q.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), q.topic_id,
            q.body_version, s.peer_pubkey, s.id, coalesce(q.sender_name, s.display_name), q.client_message_id,
            q.request_fingerprint;
END
$$;
