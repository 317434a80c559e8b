-- 0017_push_claim — the recipient's claim, cheaper per wake (issue 23,
-- docs/design.md "One message's time").  mesh.delivery_mark_claim (0014)
-- unchanged in what it does: the pushes p_presence's peer acknowledged are
-- marked delivered, then the member's deliverable rows are claimed, in one
-- transaction that commits without waiting for its WAL flush.  Two costs of
-- 0014's statement go:
--
-- - The mark is the statement itself, not a call of mesh.delivery_mark:
--   that function's two SET clauses saved and restored two settings around
--   every call.  Its rules stay (0004: only rows p_presence holds, a generic
--   plan without sequential scans), set here for this transaction only, and
--   the claim's statement gets the same plan rules.
-- - The topic's name (§12.2 "topic") comes out of the function with the row
--   instead of a sub-select in the worker's statement around it: that
--   statement is not prepared behind PgBouncer, so its sub-select was planned
--   again for every claim (pg_stat_statements: the statement's planning
--   time more than halved).
--
-- One host only; the claim of a host among several (HOST_ID) stays
-- mesh.delivery_mark_claim_hosts (0015).
CREATE OR REPLACE FUNCTION mesh.delivery_push_claim(p_mark bigint[], p_member text, p_live text[], p_idle boolean,
                                                    p_presence text, p_limit integer, p_session text)
RETURNS TABLE (r_id bigint, r_message_id text, r_mesh_id text, r_sender_pubkey text, r_priority text,
               r_nonce text, r_ciphertext text, r_created_at text, r_topic_id text, r_body_version integer,
               r_sender_member_pubkey text, r_sender_member_id text, r_sender_name text,
               r_client_message_id text, r_request_fingerprint text, r_topic_name text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  -- this transaction only: no wait for the WAL flush (0014), and
  -- mesh.delivery_mark's settings (0004) for both statements, so the claim
  -- too has its index plan from the first call of a backend (a custom plan
  -- made on stale statistics walked the primary key and hashed a sequential
  -- scan of mesh.delivery: milliseconds instead of tenths)
  PERFORM set_config('synchronous_commit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true),
          set_config('enable_seqscan', 'off', true);
  IF cardinality(p_mark) > 0 THEN
    -- mesh.delivery_mark's statement (0004)
    UPDATE mesh.delivery SET delivered_at = now() WHERE id = ANY(p_mark) AND claimed_by = p_presence;
  END IF;
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
            q.request_fingerprint, (SELECT t.name FROM mesh.topic t WHERE t.id = q.topic_id);
END
$$;
