-- 0007_topic_reply_to — the message a topic post answers (docs/protocol.md
-- §12.6: POST messages' replyToId, echoed in GET …/messages and the stream).
-- Free text of at most 128 characters, as the client sent it: the broker
-- does not check that it names a message (the reference does not either).
ALTER TABLE mesh.topic_message ADD COLUMN IF NOT EXISTS reply_to_id text
  CHECK (reply_to_id IS NULL OR length(reply_to_id) <= 128);
