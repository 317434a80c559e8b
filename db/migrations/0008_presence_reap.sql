-- 0008: a connection's end is recorded once, whoever records it (issue 21).
-- mesh.presence_close closes an open presence row and appends its peer_left
-- audit row (the payload a leaving worker writes: {"presenceId": id},
-- canonical JSON), chained the way mesh.audit_record chains any event; a row
-- that is already closed is left alone and gets no second peer_left.  The
-- leaving worker calls it, and so does the reaper of a worker that died
-- without leaving (SIGKILL, a leave while PostgreSQL was away): the acceptor's
-- `meshbroker-worker --reap`, or a live worker's periodic sweep
-- (worker/reap.c).  The caller runs mesh.audit_flush for the mesh after it.
-- Returns the mesh id when it closed the row, NULL otherwise.
CREATE OR REPLACE FUNCTION mesh.presence_close(p_presence text)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_mesh text;
  v_member text;
  v_name text;
BEGIN
  UPDATE mesh.presence SET disconnected_at = now()
   WHERE id = p_presence AND disconnected_at IS NULL
  RETURNING mesh_id, member_id INTO v_mesh, v_member;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  -- the actor's name as the hello's peer_joined row has it: the member's
  SELECT display_name INTO v_name FROM mesh.member WHERE id = v_member;
  PERFORM mesh.audit_record(v_mesh, 'peer_left', v_member, v_name,
                            '{"presenceId":' || to_json(p_presence)::text || '}');
  RETURN v_mesh;
END
$$;
