-- 0005_session_keys — session keys and idempotent sends (docs/protocol.md
-- §12.1, §12.2, "Idempotent sends"; issues 18 and 21).
--
-- A session key (hello.sessionPubkey, session_hello) belongs to the member
-- that first presented it (mesh.session_key); a direct send may target it,
-- and its delivery rows then say so (recipient_session_pubkey): only a
-- connection holding that key claims them.  A message records the sender
-- connection's session key and display name for the push, and the client's
-- client_message_id / request_fingerprint (echoed on the push); a send is
-- stored at most once per (sender member, client key) — the key is its
-- client_message_id, else its id — within a day (IDEMPOTENCY_WINDOW below).
-- client_key is that key; client_message_id is stored only when sent.

ALTER TABLE mesh.presence ADD COLUMN IF NOT EXISTS session_pubkey text;
ALTER TABLE mesh.presence ADD COLUMN IF NOT EXISTS peer_role text NOT NULL DEFAULT 'control-plane';

CREATE TABLE IF NOT EXISTS mesh.session_key (
  pubkey         text PRIMARY KEY, -- 64 lowercase hex
  mesh_id        text NOT NULL REFERENCES mesh.mesh(id) ON DELETE CASCADE,
  member_id      text NOT NULL REFERENCES mesh.member(id) ON DELETE CASCADE,
  first_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS session_key_member_idx ON mesh.session_key (member_id);

ALTER TABLE mesh.message_queue ADD COLUMN IF NOT EXISTS sender_session_pubkey text;
ALTER TABLE mesh.message_queue ADD COLUMN IF NOT EXISTS sender_name text;
ALTER TABLE mesh.message_queue ADD COLUMN IF NOT EXISTS client_message_id text;
ALTER TABLE mesh.message_queue ADD COLUMN IF NOT EXISTS request_fingerprint text;
ALTER TABLE mesh.message_queue ADD COLUMN IF NOT EXISTS client_key text;
CREATE UNIQUE INDEX IF NOT EXISTS message_queue_client_key_idx
  ON mesh.message_queue (sender_member_id, client_key) WHERE client_key IS NOT NULL;

ALTER TABLE mesh.delivery ADD COLUMN IF NOT EXISTS recipient_session_pubkey text;

-- The session-key rule of §12.1 (fix): 'ok' once p_session is recorded as a
-- key of the live member (p_mesh, p_member_pubkey) — recorded now when nobody
-- had it; 'member_key' when it is any member's own pubkey; 'other_member'
-- when another member presented it first; 'no_member' when there is no such
-- member (the membership check answers that one).
CREATE OR REPLACE FUNCTION mesh.session_key_claim(p_mesh text, p_member_pubkey text, p_session text)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_member text;
  v_owner text;
BEGIN
  IF EXISTS (SELECT 1 FROM mesh.member WHERE peer_pubkey = p_session) THEN
    RETURN 'member_key';
  END IF;
  SELECT id INTO v_member FROM mesh.member
  WHERE mesh_id = p_mesh AND peer_pubkey = p_member_pubkey AND revoked_at IS NULL;
  IF NOT FOUND THEN
    RETURN 'no_member';
  END IF;
  INSERT INTO mesh.session_key (pubkey, mesh_id, member_id) VALUES (p_session, p_mesh, v_member)
  ON CONFLICT (pubkey) DO NOTHING;
  SELECT member_id INTO v_owner FROM mesh.session_key WHERE pubkey = p_session;
  IF v_owner IS DISTINCT FROM v_member THEN
    RETURN 'other_member';
  END IF;
  RETURN 'ok';
END
$$;

-- mesh.send_messages (0004) with session keys and client ids.  Per send k:
-- a direct target is a live member's pubkey, or a session key recorded for a
-- live member of the mesh (the delivery row then names it); '*' every other
-- live member.  A send with a client key (p_keys[k] not NULL) that the
-- sender stored within the last day is not stored again: the row out is (k,
-- NULL, 'dup', first message id) when it is the same request (equal
-- fingerprints, or without fingerprints the same target, nonce and
-- ciphertext), (k, NULL, 'conflict', NULL) otherwise; an older holder of the
-- key gives it up (a client id reused after a day, e.g. a recycled pid in
-- it, is a new message).  Rows out as 0004's otherwise (status and message
-- id NULL).
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
    IF pg_try_advisory_xact_lock(hashtextextended('mesh.audit_log:' || p_mesh, 0)) THEN
      PERFORM mesh.audit_chain(p_mesh, 'message_sent', p_sender, p_actor_name, v_audit);
    ELSE
      INSERT INTO mesh.audit_pending (mesh_id, event_type, actor_member_id, actor_display_name, payload)
      SELECT p_mesh, 'message_sent', p_sender, p_actor_name, c FROM unnest(v_audit) c;
      i := 0;
      member := NULL;
      RETURN NEXT;
    END IF;
  END IF;
END
$$;

-- mesh.delivery_claim (0004) for a connection that may hold a session key
-- (p_session, NULL for none): rows addressed to a session key are claimed
-- only by a connection holding it.  The push fields of §12.2 come along:
-- the sender's session key (else its member pubkey), member pubkey, member
-- id and name, and the client's ids.
CREATE OR REPLACE FUNCTION mesh.delivery_claim_session(p_member text, p_live text[], p_idle boolean,
                                                       p_presence text, p_limit integer, p_session text)
RETURNS TABLE (r_id bigint, r_message_id text, r_mesh_id text, r_sender_pubkey text, r_priority text,
               r_nonce text, r_ciphertext text, r_created_at text, r_topic_id text, r_body_version integer,
               r_sender_member_pubkey text, r_sender_member_id text, r_sender_name text,
               r_client_message_id text, r_request_fingerprint text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
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
