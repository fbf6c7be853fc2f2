-- Conversation ids are chosen by clients (useChat's chat id), so they are only unique per caller
-- and namespace: tenant A using `chat-123` must not make it a 404 (or a shared chat) for tenant B.
-- The key becomes (caller, namespace, id); turns carry the whole key.
ALTER TABLE conversation_turns ADD COLUMN caller text, ADD COLUMN namespace text;
UPDATE conversation_turns t SET caller = c.caller, namespace = c.namespace
FROM conversations c WHERE c.id = t.conversation_id;
ALTER TABLE conversation_turns DROP CONSTRAINT conversation_turns_conversation_id_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_pkey;
ALTER TABLE conversations ADD PRIMARY KEY (caller, namespace, id);
ALTER TABLE conversation_turns
    ALTER COLUMN caller SET NOT NULL,
    ALTER COLUMN namespace SET NOT NULL,
    ADD FOREIGN KEY (caller, namespace, conversation_id)
        REFERENCES conversations (caller, namespace, id) ON DELETE CASCADE;
DROP INDEX conversation_turns_idx;
CREATE INDEX conversation_turns_idx ON conversation_turns (caller, namespace, conversation_id, id);
