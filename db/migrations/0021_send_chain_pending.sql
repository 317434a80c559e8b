-- 0021_send_chain_pending — a send's audit chain step after its ack (issue 23,
-- docs/design.md "The chain step off the send's path").
--
-- mesh.send_batch (0005) as it was, except its message_sent rows: always
-- recorded in mesh.audit_pending in the send's transaction (no try of the
-- mesh's chain lock, no mesh.audit_chain: read the last hash, sha256 and
-- INSERT into mesh.audit_log per row), and the (0, NULL) row out says so
-- whenever the batch had any.  Measured (docs/design.md): the chain step was
-- about a third of a lone send's statement, inside its transaction and so
-- before its ack.  The worker then owes the mesh a chain step, as it already
-- did when the lock was busy: mesh.audit_flush(mesh, false) from its
-- CHAIN_RETRY_MS timer (worker/send.c), one step for every row of the mesh
-- pending by then (any transaction of the mesh that gets the lock chains them
-- all: another worker's step, a hello's, a leave's, meshctl audit verify's
-- store_audit_settle).  Same signature and rows out, so a worker built before
-- this migration also works with it (it owes the step on the (0, NULL) row).
-- mesh.send_batch_hand (0019) calls this function and is unchanged.
CREATE OR REPLACE FUNCTION mesh.send_batch(p_mesh text, p_sender text, p_actor_name text, p_session text,
                                           p_ids text[], p_targets text[], p_priorities text[], p_nonces text[],
                                           p_ciphertexts text[], p_audit text[], p_keys text[], p_cids text[],
                                           p_fps text[])
RETURNS TABLE (i integer, member text, status text, first_id text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  k integer;
  v_member text;
  v_session text;
  v_any boolean;
  v_audit text[] := '{}';
  q record;
  v_inserted text;
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
    RETURNING id INTO v_inserted;
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
        RETURNING id INTO v_inserted;
      END IF;
    END IF;
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
        RETURN NEXT;
      END LOOP;
      IF NOT v_any THEN
        i := k;
        member := NULL;
        RETURN NEXT;
      END IF;
    ELSE
      INSERT INTO mesh.delivery (message_id, mesh_id, recipient_member_id, priority, recipient_session_pubkey)
      VALUES (p_ids[k], p_mesh, v_member, p_priorities[k], v_session);
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
  IF cardinality(v_audit) > 0 THEN
    INSERT INTO mesh.audit_pending (mesh_id, event_type, actor_member_id, actor_display_name, payload)
    SELECT p_mesh, 'message_sent', p_sender, p_actor_name, c FROM unnest(v_audit) c;
    i := 0;
    member := NULL;
    RETURN NEXT;
  END IF;
END
$$;
