"""POST /api/ai_execute: a prompt or a conversation on any provider, as JSON or a stream for useChat;
GET and DELETE: the caller's stored chats."""

from lib.assistant.request import AssistantRequest, ChatRef, ChatsQuery
from lib.experiments.serving import serve_execute
from lib.gateway.request import call_context, to_call
from lib.web import Endpoint, Request

app = Endpoint("ai_execute")


@app.post(AssistantRequest, role="reader", response="lib.assistant.response:ExecuteResponse",
          streams={"ui": "lib.assistant.response:ChatMessageMetadata", "text": None},
          errors=(402, 404, 429, 502, 504), headers={"x-conversation-id": "the stored chat (streamed answers)"})
async def ai_execute(request: Request, body: AssistantRequest) -> object:
    """Run a prompt or a conversation: JSON, or streamed (`stream: true`, or any useChat body)."""
    body, served = await serve_execute(request, body)  # a stored `template` and `experiment` variant, if named
    call, ctx = to_call(body, request.settings, request.user_id), served.tag(call_context(request, body))
    from lib.assistant.http import execute  # stored chats, context fitting, server tools (lib/assistant/)

    # refusals and failures before the first token are still JSON errors (see stream_response)
    return await execute(request, body, call, ctx, served=served.fields)


@app.get(ChatsQuery, role="reader", response="lib.assistant.response:StoredChat | lib.assistant.response:ChatList",
         errors=(404, 504))  # a caller's own chats
async def chats(request: Request, query: ChatsQuery) -> object:
    """The caller's stored chats; with `conversation_id`, one of them as UI messages."""
    from lib.assistant.http import read_chats

    return await read_chats(request, query)


@app.delete(ChatRef, role="reader", response="lib.assistant.response:DeletedChat", errors=(404, 504))
async def delete_chat(request: Request, query: ChatRef) -> object:
    """Delete one stored chat."""
    from lib.assistant.http import delete_chat

    return await delete_chat(request, query)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
