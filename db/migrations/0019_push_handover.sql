-- 0019_push_handover — a direct message handed to the recipient's worker with
-- the wake, no claim statement (issue 23, docs/design.md "A message's CPU").
--
-- mesh.send_batch_hand is mesh.send_batch (0005, called as it is, so its
-- rules and its audit step stay its own) plus, per send k, p_hand[k]: the one
-- live connection (presence id) of the recipient member on this host, as the
-- sender's worker saw it, or NULL.  A direct send's delivery row is claimed
-- for that connection in the send's own transaction — claimed_by set,
-- claimed_at left NULL, which marks it "handed, not yet confirmed" — only
-- when all of these hold:
--   - the presence is the recipient member's (mesh.presence);
--   - the row is `now` and for the member, not one of its session keys;
--   - no earlier undelivered row of the member is claimable by anyone else
--     (unclaimed, or claimed by another connection, live or dead): then the
--     recipient's worker holds or has in flight every earlier row, and the
--     handed one comes after them (per sender, the order of acceptance).
--     Checked once per run of handed sends to the member in a batch: right
--     after a handed send, the next send to the same member and connection
--     only needs its own row (what lies between is another sender's); any
--     row of the batch not handed ends the run.
-- The row out then carries the delivery id and the message's created_at in
-- the push's format (hand_id, hand_at); the sender's worker sends the push to
-- the recipient's worker itself.  Whatever the recipient's worker does not
-- take, or never gets (its socket full, the sender gone before it sent), its
-- next claim takes: mesh.delivery_push_claim below also returns the rows
-- handed to p_presence that no claim confirmed yet (claimed_at NULL), and
-- sets claimed_at on them as on every row it returns.  A row handed to a
-- connection that ends is given back by its leave (mesh.presence_leave) or,
-- when its worker died, claimed again by the member's next connection (it is
-- claimed by a presence no live slot has), as any claimed row.
CREATE OR REPLACE FUNCTION mesh.send_batch_hand(p_mesh text, p_sender text, p_actor_name text, p_session text,
                                                p_ids text[], p_targets text[], p_priorities text[],
                                                p_nonces text[], p_ciphertexts text[], p_audit text[],
                                                p_keys text[], p_cids text[], p_fps text[], p_hand text[])
RETURNS TABLE (i integer, member text, status text, first_id text, hand_id bigint, hand_at text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  r record;
  v_seqscan text;
  v_clear text; -- the member whose earlier rows were found all p_hand's in this batch
BEGIN
  FOR r IN SELECT * FROM mesh.send_batch(p_mesh, p_sender, p_actor_name, p_session, p_ids, p_targets,
                                         p_priorities, p_nonces, p_ciphertexts, p_audit, p_keys, p_cids, p_fps)
  LOOP
    i := r.i;
    member := r.member;
    status := r.status;
    first_id := r.first_id;
    hand_id := NULL;
    hand_at := NULL;
    IF r.i > 0 AND r.member IS NOT NULL AND r.status IS NULL AND p_hand[r.i] IS NOT NULL
       AND p_targets[r.i] <> '*' AND p_priorities[r.i] = 'now'
       AND EXISTS (SELECT 1 FROM mesh.presence p WHERE p.id = p_hand[r.i] AND p.member_id = r.member) THEN
      -- the claim's plan rule (0017): index scans of mesh.delivery from the
      -- first call of a backend, whatever its statistics said then; for this
      -- statement only (send_batch's own statements plan as before)
      v_seqscan := current_setting('enable_seqscan');
      PERFORM set_config('enable_seqscan', 'off', true);
      IF v_clear IS NOT DISTINCT FROM r.member || ' ' || p_hand[r.i] THEN
        -- the previous row of this batch was handed to the same connection:
        -- what came before it was checked, and what came between is another
        -- sender's (no order between senders)
        UPDATE mesh.delivery d SET claimed_by = p_hand[r.i]
        WHERE d.recipient_member_id = r.member AND d.delivered_at IS NULL AND d.message_id = p_ids[r.i]
          AND d.claimed_by IS NULL AND d.recipient_session_pubkey IS NULL
        RETURNING d.id INTO hand_id;
      ELSE
        UPDATE mesh.delivery d SET claimed_by = p_hand[r.i]
        WHERE d.recipient_member_id = r.member AND d.delivered_at IS NULL AND d.message_id = p_ids[r.i]
          AND d.claimed_by IS NULL AND d.recipient_session_pubkey IS NULL
          AND NOT EXISTS (SELECT 1 FROM mesh.delivery e
                          WHERE e.recipient_member_id = r.member AND e.delivered_at IS NULL AND e.id < d.id
                            AND (e.claimed_by IS NULL OR e.claimed_by <> p_hand[r.i]))
        RETURNING d.id INTO hand_id;
        IF hand_id IS NOT NULL THEN
          v_clear := r.member || ' ' || p_hand[r.i];
        END IF;
      END IF;
      PERFORM set_config('enable_seqscan', v_seqscan, true);
      IF hand_id IS NOT NULL THEN
        SELECT to_char(q.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') INTO hand_at
        FROM mesh.message_queue q WHERE q.id = p_ids[r.i];
      END IF;
    END IF;
    IF hand_id IS NULL AND r.member IS NOT NULL THEN
      v_clear := NULL; -- a row of this batch not handed: the next one checks again
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;

-- 0017's claim, and also the rows handed to p_presence that no claim
-- confirmed yet (claimed_at NULL: its worker did not take them, or never got
-- them); the worker drops those it already holds.
CREATE OR REPLACE FUNCTION mesh.delivery_push_claim(p_mark bigint[], p_member text, p_live text[], p_idle boolean,
                                                    p_presence text, p_limit integer, p_session text)
RETURNS TABLE (r_id bigint, r_message_id text, r_mesh_id text, r_sender_pubkey text, r_priority text,
               r_nonce text, r_ciphertext text, r_created_at text, r_topic_id text, r_body_version integer,
               r_sender_member_pubkey text, r_sender_member_id text, r_sender_name text,
               r_client_message_id text, r_request_fingerprint text, r_topic_name text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true),
          set_config('enable_seqscan', 'off', true);
  IF cardinality(p_mark) > 0 THEN
    UPDATE mesh.delivery SET delivered_at = now() WHERE id = ANY(p_mark) AND claimed_by = p_presence;
  END IF;
  RETURN QUERY
  WITH c AS (SELECT d.id FROM mesh.delivery d WHERE d.recipient_member_id = p_member
             AND d.delivered_at IS NULL
             AND (d.claimed_by IS NULL OR NOT d.claimed_by = ANY(p_live)
                  OR (d.claimed_by = p_presence AND d.claimed_at IS NULL))
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
