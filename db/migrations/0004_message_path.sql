-- 0004_message_path — the statements of every message as plpgsql functions
-- (issue 13): one statement and one commit per batch of sends (messages,
-- delivery rows and their message_sent audit rows), and the recipient's claim
-- and mark.  A plpgsql function keeps its statements' plans for the life of
-- the backend, so they are planned once per backend through any pooler
-- (PgBouncer in transaction mode keeps no prepared statement of ours); the
-- statement the worker sends is a bare function call, which db/db.c also
-- prepares by name where the connection is direct.

-- The audit chain (docs/protocol.md §8) without anyone waiting for its lock.
-- Until now every append took the mesh's advisory lock in a transaction of
-- its own and held it through the commit, WAL flush included: the appends of
-- one mesh (one per message) ran one flush at a time, and each worker's next
-- send waited behind its append.  Now the rows are written where their event
-- happens (a send's rows in the send's transaction) and chained there when
-- the lock is free (pg_try_advisory_xact_lock); when it is not, they are
-- recorded in mesh.audit_pending instead, and the next chain step of the mesh
-- (any transaction that gets the lock: another send, mesh.audit_flush) chains
-- them first, in the order they were recorded.  created_at is the time a row
-- joined the chain, as before.
CREATE TABLE IF NOT EXISTS mesh.audit_pending (
  id                  bigserial PRIMARY KEY,
  mesh_id             text NOT NULL,
  event_type          text NOT NULL,
  actor_member_id     text,
  actor_display_name  text,
  payload             text NOT NULL, -- canonical JSON
  created_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS audit_pending_mesh_idx ON mesh.audit_pending (mesh_id, id);

-- hash = sha256_hex(prev_hash|mesh_id|event_type|actor|canonical_json|created_at_iso)
-- (an SQL function: inlined where it is used)
CREATE OR REPLACE FUNCTION mesh.audit_hash(p_prev text, p_mesh text, p_event text, p_actor text, p_canonical text,
                                           p_ts timestamptz)
RETURNS text LANGUAGE sql STABLE AS $$
  SELECT encode(sha256(convert_to(p_prev || '|' || p_mesh || '|' || p_event || '|' || coalesce(p_actor, 'null')
                || '|' || p_canonical || '|'
                || to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'UTF8')), 'hex')
$$;

-- The chain step; the caller holds the mesh's lock.  First every pending row
-- of p_mesh visible now (oldest first), then one p_event row per element of
-- p_canonical (may be NULL); the number of rows chained.
CREATE OR REPLACE FUNCTION mesh.audit_chain(p_mesh text, p_event text, p_actor text, p_actor_name text,
                                            p_canonical text[])
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_prev text;
  v_ts timestamptz;
  v_hash text;
  v_n integer := 0;
  v_canon text;
  r record;
BEGIN
  -- each statement of a volatile function takes a fresh snapshot: the
  -- latest committed hash, and the pending rows no chain step has taken
  SELECT hash INTO v_prev FROM mesh.audit_log WHERE mesh_id = p_mesh ORDER BY id DESC LIMIT 1;
  v_prev := coalesce(v_prev, 'genesis');
  IF EXISTS (SELECT 1 FROM mesh.audit_pending WHERE mesh_id = p_mesh) THEN
    FOR r IN WITH t AS (DELETE FROM mesh.audit_pending WHERE mesh_id = p_mesh RETURNING *) SELECT * FROM t ORDER BY id
    LOOP
      v_ts := date_trunc('milliseconds', clock_timestamp());
      v_hash := mesh.audit_hash(v_prev, p_mesh, r.event_type, r.actor_member_id, r.payload, v_ts);
      INSERT INTO mesh.audit_log (mesh_id, event_type, actor_member_id, actor_display_name, payload, prev_hash,
                                  hash, created_at)
      VALUES (p_mesh, r.event_type, r.actor_member_id, r.actor_display_name, r.payload::jsonb, v_prev, v_hash, v_ts);
      v_prev := v_hash;
      v_n := v_n + 1;
    END LOOP;
  END IF;
  FOREACH v_canon IN ARRAY coalesce(p_canonical, '{}') LOOP
    v_ts := date_trunc('milliseconds', clock_timestamp());
    v_hash := mesh.audit_hash(v_prev, p_mesh, p_event, p_actor, v_canon, v_ts);
    INSERT INTO mesh.audit_log (mesh_id, event_type, actor_member_id, actor_display_name, payload, prev_hash, hash,
                                created_at)
    VALUES (p_mesh, p_event, p_actor, p_actor_name, v_canon::jsonb, v_prev, v_hash, v_ts);
    v_prev := v_hash;
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END
$$;

-- A chain step of its own, for a worker whose rows were left pending; the
-- number of rows chained.  Nothing pending (the usual case: another
-- transaction's step took them) costs one index probe and no lock.  Without
-- p_wait, a lock held elsewhere makes it return -1 at once (nothing done).
-- Its commit does not wait for its WAL flush (synchronous_commit off, this
-- transaction only), so it holds the lock only while it works: if that
-- commit is lost in a PostgreSQL crash, the rows are pending again (their
-- deletion is lost with it) and a later step chains them; the WAL is written
-- in order, so no later step survives a crash without this one.
CREATE OR REPLACE FUNCTION mesh.audit_flush(p_mesh text, p_wait boolean)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM mesh.audit_pending WHERE mesh_id = p_mesh) THEN
    RETURN 0;
  END IF;
  IF p_wait THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('mesh.audit_log:' || p_mesh, 0));
  ELSIF NOT pg_try_advisory_xact_lock(hashtextextended('mesh.audit_log:' || p_mesh, 0)) THEN
    RETURN -1;
  END IF;
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN mesh.audit_chain(p_mesh, NULL, NULL, NULL, NULL);
END
$$;

-- One event that is not a send's (mesh.send_messages writes those), in a
-- transaction of its own: chained at once when the mesh's chain lock is free,
-- else recorded in mesh.audit_pending; the worker runs mesh.audit_flush
-- (waiting) right after, which finds nothing to do in the first case.  Rows
-- only for meshes that exist: a hello naming a made-up mesh leaves no row.
CREATE OR REPLACE FUNCTION mesh.audit_record(p_mesh text, p_event text, p_actor text, p_actor_name text,
                                             p_canonical text)
RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM mesh.mesh WHERE id = p_mesh) THEN
    RETURN;
  END IF;
  IF pg_try_advisory_xact_lock(hashtextextended('mesh.audit_log:' || p_mesh, 0)) THEN
    PERFORM mesh.audit_chain(p_mesh, p_event, p_actor, p_actor_name, ARRAY[p_canonical]);
  ELSE
    INSERT INTO mesh.audit_pending (mesh_id, event_type, actor_member_id, actor_display_name, payload)
    VALUES (p_mesh, p_event, p_actor, p_actor_name, p_canonical);
  END IF;
END
$$;

-- 0002's one-call append, kept for workers built before this migration (and
-- as 0002 had it, waiting for the lock): the mesh's pending rows, then its
-- own.  p_payload is p_canonical as jsonb.
CREATE OR REPLACE FUNCTION mesh.audit_append(p_mesh text, p_event text, p_actor text, p_actor_name text,
                                             p_payload jsonb, p_canonical text)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM mesh.mesh WHERE id = p_mesh) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('mesh.audit_log:' || p_mesh, 0));
  PERFORM mesh.audit_chain(p_mesh, p_event, p_actor, p_actor_name, ARRAY[p_canonical]);
  RETURN (SELECT max(id) FROM mesh.audit_log WHERE mesh_id = p_mesh);
END
$$;

-- Sends of one sender (a batch: the arrays are parallel, in the order the
-- sends were accepted), in one transaction: for each, the message and one
-- delivery row per recipient member — a direct target is the live member with
-- that pubkey, '*' every other live member — or nothing when a direct target
-- names no member; then the message_sent audit rows of the stored sends
-- whose p_audit is not NULL (their canonical payloads): chained in this
-- transaction when the mesh's chain lock is free (it is then held through
-- this commit, but nobody waits for it), recorded in mesh.audit_pending when
-- another transaction holds it.  Rows out: (i, member) for every delivery
-- row, (i, NULL) for a stored send without recipients, nothing for a send
-- that was not stored; and (0, NULL) when the audit rows were left pending:
-- the worker then owes the mesh a chain step (mesh.audit_flush).  Delivery
-- ids follow the array order, so per (sender, recipient) the order of
-- acceptance is the order of delivery.  (A missing nonce is the empty one:
-- string_to_array('', ',') is an empty array.)
CREATE OR REPLACE FUNCTION mesh.send_messages(p_mesh text, p_sender text, p_actor_name text, p_ids text[],
                                              p_targets text[], p_priorities text[], p_nonces text[],
                                              p_ciphertexts text[], p_audit text[])
RETURNS TABLE (i integer, member text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  k integer;
  v_member text;
  v_any boolean;
  v_audit text[] := '{}';
BEGIN
  FOR k IN 1 .. coalesce(cardinality(p_ids), 0) LOOP
    IF p_targets[k] = '*' THEN
      INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext)
      VALUES (p_ids[k], p_mesh, p_sender, '*', p_priorities[k], coalesce(p_nonces[k], ''), p_ciphertexts[k]);
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
      SELECT m.id INTO v_member FROM mesh.member m
      WHERE m.mesh_id = p_mesh AND m.peer_pubkey = p_targets[k] AND m.revoked_at IS NULL;
      CONTINUE WHEN NOT FOUND;
      INSERT INTO mesh.message_queue (id, mesh_id, sender_member_id, target_spec, priority, nonce, ciphertext)
      VALUES (p_ids[k], p_mesh, p_sender, p_targets[k], p_priorities[k], coalesce(p_nonces[k], ''),
              p_ciphertexts[k]);
      INSERT INTO mesh.delivery (message_id, mesh_id, recipient_member_id, priority)
      VALUES (p_ids[k], p_mesh, v_member, p_priorities[k]);
      i := k;
      member := v_member;
      RETURN NEXT;
    END IF;
    IF p_audit[k] IS NOT NULL THEN
      v_audit := v_audit || p_audit[k];
    END IF;
  END LOOP;
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

-- The claim of docs/protocol.md §3.4 (db/store.c: store_delivery_claim): up
-- to p_limit undelivered rows of p_member for p_presence, oldest first,
-- skipping rows locked by a concurrent claim and rows claimed by a live
-- connection of the member (p_live); only 'now' rows unless p_idle.  The
-- claim commits without waiting for its WAL flush (synchronous_commit off,
-- this transaction only): a claim lost in a PostgreSQL crash only makes its
-- rows claimable again, as if their connection had gone; the mark that
-- follows the push waits for the flush, and so for this claim's too.
CREATE OR REPLACE FUNCTION mesh.delivery_claim(p_member text, p_live text[], p_idle boolean, p_presence text,
                                               p_limit integer)
RETURNS TABLE (r_id bigint, r_message_id text, r_mesh_id text, r_sender_pubkey text, r_priority text,
               r_nonce text, r_ciphertext text, r_created_at text, r_topic_id text, r_body_version integer)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN QUERY
  WITH c AS (SELECT d.id FROM mesh.delivery d WHERE d.recipient_member_id = p_member
             AND d.delivered_at IS NULL AND (d.claimed_by IS NULL OR NOT d.claimed_by = ANY(p_live))
             AND (d.priority = 'now' OR p_idle) ORDER BY d.id LIMIT p_limit FOR UPDATE SKIP LOCKED)
  UPDATE mesh.delivery d SET claimed_by = p_presence, claimed_at = now()
  FROM c, mesh.message_queue q, mesh.member s
  WHERE d.id = c.id AND q.id = d.message_id AND s.id = q.sender_member_id
  RETURNING d.id, q.id, q.mesh_id, s.peer_pubkey, q.priority, q.nonce, q.ciphertext,
            to_char(q.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), q.topic_id, q.body_version;
END
$$;

-- The listed rows claimed by p_presence reached the socket: delivered.  Left
-- to choose, the plan cache plans this statement again for every call (a
-- custom plan's estimate for `id = ANY(array)` always looks cheaper), so the
-- generic plan is forced; and made without sequential scans, since a backend
-- that makes it while mesh.delivery is still small would otherwise keep a
-- sequential scan for its life (measured: 204 us a call instead of 55).
CREATE OR REPLACE FUNCTION mesh.delivery_mark(p_ids bigint[], p_presence text)
RETURNS void LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
  UPDATE mesh.delivery SET delivered_at = now() WHERE id = ANY(p_ids) AND claimed_by = p_presence;
END
$$;
