-- 0009_group_send_sessions — '@group', '@all' and hidden-aware '*' sends
-- (mesh.send_group, 0006) with what 0005 gave direct sends: the sender
-- connection's session key and display name (so their pushes carry the same
-- sender fields as a DM's, docs/protocol.md §12.1, §12.2) and the client's
-- client_message_id / request_fingerprint, stored at most once per (sender
-- member, client key) within a day, like mesh.send_batch.
--
-- One '*' or '@<p_group>' send (p_group NULL for '*' and '@all') in one
-- transaction: the message, then one delivery row per recipient
-- (mesh.group_recipients, 0006), rows (member, NULL, NULL) out.  With a
-- client key (p_key not NULL) the sender stored within the last day: nothing
-- is stored, and the one row out is (NULL, 'dup', first message id) when it
-- is the same request (equal fingerprints, or without fingerprints the same
-- target, nonce and ciphertext), (NULL, 'conflict', NULL) otherwise; an older
-- holder of the key gives it up (0005's rule).  A stored send without
-- recipients gives no row.
CREATE OR REPLACE FUNCTION mesh.send_group(p_id text, p_mesh text, p_sender text, p_actor_name text, p_session text,
                                           p_target text, p_group text, p_priority text, p_nonce text,
                                           p_ciphertext text, p_live_members text[], p_visible text[], p_key text,
                                           p_cid text, p_fp text)
RETURNS TABLE (member text, status text, first_id text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  q record;
  v_inserted text;
BEGIN
  INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext,
                                  sender_session_pubkey, sender_name, client_key, client_message_id,
                                  request_fingerprint)
  VALUES (p_id, p_mesh, p_sender, p_target, p_priority, coalesce(p_nonce, ''), coalesce(p_ciphertext, ''),
          p_session, p_actor_name, p_key, p_cid, p_fp)
  ON CONFLICT (sender_member_id, client_key) WHERE client_key IS NOT NULL DO NOTHING
  RETURNING id INTO v_inserted;
  IF v_inserted IS NULL THEN
    SELECT mq.id, mq.request_fingerprint, mq.target_spec, mq.nonce, mq.ciphertext, mq.created_at INTO q
    FROM mesh.message_queue mq WHERE mq.sender_member_id = p_sender AND mq.client_key = p_key;
    IF q.created_at < clock_timestamp() - interval '1 day' THEN -- IDEMPOTENCY_WINDOW (0005)
      UPDATE mesh.message_queue SET client_key = NULL WHERE id = q.id;
      INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext,
                                      sender_session_pubkey, sender_name, client_key, client_message_id,
                                      request_fingerprint)
      VALUES (p_id, p_mesh, p_sender, p_target, p_priority, coalesce(p_nonce, ''), coalesce(p_ciphertext, ''),
              p_session, p_actor_name, p_key, p_cid, p_fp)
      RETURNING id INTO v_inserted;
    END IF;
  END IF;
  IF v_inserted IS NULL THEN
    member := NULL;
    IF (q.request_fingerprint IS NULL AND p_fp IS NULL AND q.target_spec = p_target
        AND q.nonce = coalesce(p_nonce, '') AND q.ciphertext = coalesce(p_ciphertext, ''))
       OR (q.request_fingerprint IS NOT NULL AND q.request_fingerprint = p_fp) THEN
      status := 'dup';
      first_id := q.id;
    ELSE
      status := 'conflict';
      first_id := NULL;
    END IF;
    RETURN NEXT;
    RETURN;
  END IF;
  RETURN QUERY
    INSERT INTO mesh.delivery (message_id, mesh_id, recipient_member_id, priority)
    SELECT p_id, p_mesh, r, p_priority FROM mesh.group_recipients(p_mesh, p_sender, p_group, p_live_members,
                                                                  p_visible) r
    RETURNING recipient_member_id, NULL::text, NULL::text;
END
$$;

-- 0006's signature, for workers built before this migration: the same send
-- without session key, name or client key (never a duplicate).
CREATE OR REPLACE FUNCTION mesh.send_group(p_id text, p_mesh text, p_sender text, p_target text, p_group text,
                                           p_priority text, p_nonce text, p_ciphertext text,
                                           p_live_members text[], p_visible text[])
RETURNS SETOF text LANGUAGE sql VOLATILE AS $$
  SELECT g.member FROM mesh.send_group(p_id, p_mesh, p_sender, NULL, NULL, p_target, p_group, p_priority, p_nonce,
                                       p_ciphertext, p_live_members, p_visible, NULL, NULL, NULL) g
$$;
