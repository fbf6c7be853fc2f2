-- Assistant chats: /api/ai_execute keeps its conversations in the same store as /api/rag, scoped
-- the same way (caller, namespace, id). An assistant turn is one AI SDK UI message: `parts` holds
-- its text, tool calls with their results and its sources as useChat renders them, `message_id`
-- is the id the browser knows it by (unique within the chat), `metadata` what the answer's
-- `finish` carried (model, usage, cost). rag's turns keep `content` and `citations`, with no parts.
-- `content` stays filled for every turn (the text parts), so rag can read an assistant chat too.
ALTER TABLE conversation_turns
    ADD COLUMN message_id text,
    ADD COLUMN parts jsonb,
    ADD COLUMN metadata jsonb;
CREATE UNIQUE INDEX conversation_turns_message_idx
    ON conversation_turns (caller, namespace, conversation_id, message_id) WHERE message_id IS NOT NULL;

-- A chat longer than its model's window is folded into a running summary once, not on every
-- request: the summary, the last turn it covers (turn ids only grow) and how many turns it folds.
-- `title` is the first words of the first question, for the list of a caller's chats.
ALTER TABLE conversations
    ADD COLUMN title text,
    ADD COLUMN summary text,
    ADD COLUMN summary_through bigint,
    ADD COLUMN summary_turns integer NOT NULL DEFAULT 0;
CREATE INDEX conversations_recent_idx ON conversations (caller, namespace, updated_at DESC, id);
