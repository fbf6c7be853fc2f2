"""What `/api/ai_execute` takes on top of a model call: a stored chat, its context strategy and the
tools the server runs; and the query of its GET and DELETE (a caller's stored chats).

Only pydantic and the gateway's request model are imported, so the function's cold start stays small.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lib.gateway.request import ExecuteRequest, MessageIn, Strict
from lib.web.fields import Namespace

SERVER_TOOLS = ("search_documents", "fetch_document")
DEFAULT_MAX_STEPS = 5
MAX_STEPS = 10  # each step is a model call: ten bounds what one request can spend and how long it runs

# the same alphabet as rag's conversation ids (lib/retrieval/conversations.py)
ConversationId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-:.]+$")]
EndUser = Annotated[str, Field(min_length=1, max_length=256)]


class AssistantRequest(ExecuteRequest):
    """`POST /api/ai_execute`: the model call (`ExecuteRequest`) and what the assistant adds."""

    # the newest message alone, for a stored chat (the AI SDK's persistence pattern sends `message`)
    message: MessageIn | None = None
    conversation_id: ConversationId | None = None
    namespace: Namespace = "default"
    store: bool | None = None  # None: keep the chat when it has an id (`conversation_id` or useChat's `id`)
    server_tools: list[Literal["search_documents", "fetch_document"]] = Field(default_factory=list, max_length=8)
    max_steps: int = Field(DEFAULT_MAX_STEPS, ge=1, le=MAX_STEPS)
    context: Literal["drop", "summarize"] | None = None  # None: CONTEXT_STRATEGY

    @property
    def chat_id(self) -> str | None:
        """The stored chat this request belongs to, if any."""
        if self.store is False:
            return None
        return self.conversation_id or self.id

    @model_validator(mode="after")
    def prompt_or_messages(self) -> AssistantRequest:
        if self.message is not None:
            if self.messages is not None or self.prompt is not None:
                raise ValueError("send `message` (the newest one) or `messages`, not both, and no `prompt`")
            self.messages = [self.message]
        self.server_tools = list(dict.fromkeys(self.server_tools))
        if self.store is True and not (self.conversation_id or self.id):
            raise ValueError("`store: true` needs a `conversation_id` (or useChat's `id`)")
        # the model call's own checks; a tool_choice may name server tools alone
        choice = self.tool_choice
        if self.server_tools and not self.tools:
            self.tool_choice = None
        ExecuteRequest.prompt_or_messages(self)
        self.tool_choice = choice
        return self


class ChatsQuery(Strict):
    """`GET /api/ai_execute`: one chat (`conversation_id`) as UI messages, or the list of chats."""

    conversation_id: ConversationId | None = None
    namespace: Namespace = "default"
    user: EndUser | None = None
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


class ChatRef(Strict):
    """`DELETE /api/ai_execute?conversation_id=...`: one chat."""

    conversation_id: ConversationId
    namespace: Namespace = "default"
    user: EndUser | None = None
