-- 0021_send_chain_pending — a lone send's audit chain step after its ack, and
-- its statement without 0019's wrapper (issue 23, docs/design.md "The chain
-- step off the send's path").
--
-- mesh.send_batch_hand becomes the statement of every send that goes alone in
-- its statement (db/store.c: one-at-a-time traffic; p_hand NULL when there is
-- no connection to hand to), and its message_sent rows are always recorded
-- in mesh.audit_pending in the send's transaction (no try of the mesh's
-- chain lock, no mesh.audit_chain: read the last hash, sha256 and INSERT into
-- mesh.audit_log), with the (0, NULL) row out.  Measured (docs/design.md):
-- the chain step was a sixth to a third of a lone send's statement, inside
-- its transaction and so before its ack.  The worker then owes the mesh a
-- chain step, as it already did when the lock was busy: mesh.audit_flush(mesh,
-- false) from its CHAIN_RETRY_MS timer (worker/send.c), one step for every
-- row of the mesh pending by then (any transaction of the mesh that gets the
-- lock chains them all: another worker's step, a batch's, a hello's, a
-- leave's, meshctl audit verify's store_audit_settle).  A batch of several
-- sends (mesh.send_batch, 0005, unchanged) still chains in its own
-- transaction when the lock is free: its acks wait for the whole batch
-- anyway, and one chain step there serves all its rows (10 pairs x 8 in
-- flight ran 0.94x with batches pending too).  Same signature and rows
-- out as 0019, so a worker built before this migration works with it (it
-- owes the step on the (0, NULL) row).

-- mesh.send_batch_hand (0019) without its wrapper: 0019 ran mesh.send_batch
-- through a plpgsql FOR loop (its rows kept in a tuplestore, then walked
-- again), and for each handed row an UPDATE of the delivery row it had just
-- inserted (a second row version) and a SELECT of the message's created_at.
-- Now one function does 0005 send_batch's work (its message_sent rows always
-- pending, above)
-- and, for a send it may hand, inserts the delivery row already claimed for
-- the named connection (claimed_by set, claimed_at NULL: "handed, not yet
-- confirmed"), created_at from its own INSERT.  The rules are 0019's, checked
-- before the insert instead of after it: a direct `now` send to a member (not
-- one of its session keys), p_hand[k] a presence of that member, and no
-- undelivered row of the member claimable by anyone else (checked once per
-- run of handed sends to one member and connection in a batch; a row of the
-- batch not handed ends the run).  The new row's id is above every row that
-- check saw, as 0019's `e.id < d.id`.  Same signature and rows out as 0019's.
CREATE OR REPLACE FUNCTION mesh.send_batch_hand(p_mesh text, p_sender text, p_actor_name text, p_session text,
                                                p_ids text[], p_targets text[], p_priorities text[],
                                                p_nonces text[], p_ciphertexts text[], p_audit text[],
                                                p_keys text[], p_cids text[], p_fps text[], p_hand text[])
RETURNS TABLE (i integer, member text, status text, first_id text, hand_id bigint, hand_at text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  k integer;
  v_member text;
  v_session text;
  v_any boolean;
  v_audit text[] := '{}';
  q record;
  v_inserted text;
  v_created timestamptz;
  v_hand text;
  v_seqscan text;
  v_clear text; -- the member and connection whose earlier rows were found all handed there in this batch
BEGIN
  FOR k IN 1 .. coalesce(cardinality(p_ids), 0) LOOP
    v_session := NULL;
    IF p_targets[k] <> '*' THEN
      SELECT m.id INTO v_member FROM mesh.member m
      WHERE m.mesh_id = p_mesh AND m.peer_pubkey = p_targets[k] AND m.revoked_at IS NULL;
      IF NOT FOUND THEN
        SELECT m.id INTO v_member FROM mesh.session_key sk JOIN mesh.member m ON m.id = sk.member_id
        WHERE sk.pubkey = p_targets[k] AND sk.mesh_id = p_mesh AND m.revoked_at IS NULL;
        CONTINUE WHEN NOT FOUND;
        v_session := p_targets[k];
      END IF;
    END IF;
    v_inserted := NULL;
    INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext,
                                    sender_session_pubkey, sender_name, client_key, client_message_id,
                                    request_fingerprint)
    VALUES (p_ids[k], p_mesh, p_sender, p_targets[k], p_priorities[k], coalesce(p_nonces[k], ''),
            coalesce(p_ciphertexts[k], ''), p_session, p_actor_name, p_keys[k], p_cids[k], p_fps[k])
    ON CONFLICT (sender_member_id, client_key) WHERE client_key IS NOT NULL DO NOTHING
    RETURNING id, created_at INTO v_inserted, v_created;
    IF v_inserted IS NULL THEN
      SELECT mq.id, mq.request_fingerprint, mq.target_spec, mq.nonce, mq.ciphertext, mq.created_at INTO q
      FROM mesh.message_queue mq WHERE mq.sender_member_id = p_sender AND mq.client_key = p_keys[k];
      IF q.created_at < clock_timestamp() - interval '1 day' THEN -- IDEMPOTENCY_WINDOW
        UPDATE mesh.message_queue SET client_key = NULL WHERE id = q.id;
        INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext,
                                        sender_session_pubkey, sender_name, client_key, client_message_id,
                                        request_fingerprint)
        VALUES (p_ids[k], p_mesh, p_sender, p_targets[k], p_priorities[k], coalesce(p_nonces[k], ''),
                coalesce(p_ciphertexts[k], ''), p_session, p_actor_name, p_keys[k], p_cids[k], p_fps[k])
        RETURNING id, created_at INTO v_inserted, v_created;
      END IF;
    END IF;
    hand_id := NULL;
    hand_at := NULL;
    IF v_inserted IS NULL THEN
      i := k;
      member := NULL;
      IF (q.request_fingerprint IS NULL AND p_fps[k] IS NULL
          AND q.target_spec = p_targets[k] AND q.nonce = coalesce(p_nonces[k], '')
          AND q.ciphertext = coalesce(p_ciphertexts[k], ''))
         OR (q.request_fingerprint IS NOT NULL AND q.request_fingerprint = p_fps[k]) THEN
        status := 'dup';
        first_id := q.id;
      ELSE
        status := 'conflict';
        first_id := NULL;
      END IF;
      RETURN NEXT;
      CONTINUE;
    END IF;
    status := NULL;
    first_id := NULL;
    IF p_targets[k] = '*' THEN
      v_any := false;
      FOR v_member IN
        INSERT INTO mesh.delivery (message_id, mesh_id, recipient_member_id, priority)
        SELECT p_ids[k], p_mesh, m.id, p_priorities[k] FROM mesh.member m
        WHERE m.mesh_id = p_mesh AND m.revoked_at IS NULL AND m.id <> p_sender ORDER BY m.id
        RETURNING recipient_member_id
      LOOP
        i := k;
        member := v_member;
        v_any := true;
        v_clear := NULL; -- a row of this batch not handed: the next one checks again
        RETURN NEXT;
      END LOOP;
      IF NOT v_any THEN
        i := k;
        member := NULL;
        RETURN NEXT;
      END IF;
    ELSE
      v_hand := NULL;
      IF p_hand[k] IS NOT NULL AND v_session IS NULL AND p_priorities[k] = 'now'
         AND EXISTS (SELECT 1 FROM mesh.presence p WHERE p.id = p_hand[k] AND p.member_id = v_member) THEN
        IF v_clear IS NOT DISTINCT FROM v_member || ' ' || p_hand[k] THEN
          -- the previous row of this batch was handed to the same connection:
          -- what came before it was checked, and what came between is
          -- another sender's (no order between senders)
          v_hand := p_hand[k];
        ELSE
          -- the claim's plan rule (0017): index scans of mesh.delivery from
          -- the first call of a backend, for this check only
          v_seqscan := current_setting('enable_seqscan');
          PERFORM set_config('enable_seqscan', 'off', true);
          IF NOT EXISTS (SELECT 1 FROM mesh.delivery e
                         WHERE e.recipient_member_id = v_member AND e.delivered_at IS NULL
                           AND (e.claimed_by IS NULL OR e.claimed_by <> p_hand[k])) THEN
            v_hand := p_hand[k];
          END IF;
          PERFORM set_config('enable_seqscan', v_seqscan, true);
        END IF;
      END IF;
      INSERT INTO mesh.delivery (message_id, mesh_id, recipient_member_id, priority, recipient_session_pubkey,
                                 claimed_by)
      VALUES (p_ids[k], p_mesh, v_member, p_priorities[k], v_session, v_hand)
      RETURNING id INTO hand_id;
      IF v_hand IS NULL THEN
        hand_id := NULL;
        v_clear := NULL; -- a row of this batch not handed: the next one checks again
      ELSE
        hand_at := to_char(v_created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
        v_clear := v_member || ' ' || v_hand;
      END IF;
      i := k;
      member := v_member;
      RETURN NEXT;
    END IF;
    IF p_audit[k] IS NOT NULL THEN
      v_audit := v_audit || p_audit[k];
    END IF;
  END LOOP;
  status := NULL;
  first_id := NULL;
  hand_id := NULL;
  hand_at := NULL;
  IF cardinality(v_audit) > 0 THEN
    INSERT INTO mesh.audit_pending (mesh_id, event_type, actor_member_id, actor_display_name, payload)
    SELECT p_mesh, 'message_sent', p_sender, p_actor_name, c FROM unnest(v_audit) c;
    i := 0;
    member := NULL;
    RETURN NEXT;
  END IF;
END
$$;
