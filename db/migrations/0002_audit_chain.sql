-- 0002_audit_chain — append to the per-mesh audit hash chain (docs/protocol.md §8)
-- in one call.  The advisory lock serialises appends per mesh; as a volatile
-- plpgsql function every statement takes a fresh snapshot, so the previous
-- hash read after the lock is the latest committed one.
-- hash = sha256_hex(prev_hash|mesh_id|event_type|actor|canonical_json|created_at_iso)
CREATE OR REPLACE FUNCTION mesh.audit_append(p_mesh text, p_event text, p_actor text, p_actor_name text,
                                             p_payload jsonb, p_canonical text)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_prev text;
  v_ts timestamptz := date_trunc('milliseconds', clock_timestamp());
  v_hash text;
  v_id bigint;
BEGIN
  -- rows only for meshes that exist: a hello naming a made-up mesh leaves no row
  IF NOT EXISTS (SELECT 1 FROM mesh.mesh WHERE id = p_mesh) THEN
    RETURN NULL;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended('mesh.audit_log:' || p_mesh, 0));
  SELECT hash INTO v_prev FROM mesh.audit_log WHERE mesh_id = p_mesh ORDER BY id DESC LIMIT 1;
  v_prev := coalesce(v_prev, 'genesis');
  v_hash := encode(sha256(convert_to(v_prev || '|' || p_mesh || '|' || p_event || '|' || coalesce(p_actor, 'null')
                  || '|' || p_canonical || '|'
                  || to_char(v_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'UTF8')), 'hex');
  INSERT INTO mesh.audit_log (mesh_id, event_type, actor_member_id, actor_display_name, payload, prev_hash, hash,
                              created_at)
  VALUES (p_mesh, p_event, p_actor, p_actor_name, p_payload, v_prev, v_hash, v_ts)
  RETURNING id INTO v_id;
  RETURN v_id;
END
$$;
