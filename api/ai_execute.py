"""POST /api/ai_execute: a prompt or a conversation on any provider, as JSON or a stream for useChat;
GET and DELETE: the caller's stored chats."""

from lib.assistant.request import AssistantRequest, ChatRef, ChatsQuery
from lib.gateway.request import call_context, to_call
from lib.web import Endpoint, Request

app = Endpoint("ai_execute")


@app.post(AssistantRequest)
async def ai_execute(request: Request, body: AssistantRequest) -> object:
    call, ctx = to_call(body, request.settings), call_context(request, body)
    from lib.assistant.http import execute  # stored chats, context fitting, server tools (lib/assistant/)

    # refusals and failures before the first token are still JSON errors (see stream_response)
    return await execute(request, body, call, ctx)


@app.get(ChatsQuery)
async def chats(request: Request, query: ChatsQuery) -> object:
    from lib.assistant.http import read_chats

    return await read_chats(request, query)


@app.delete(ChatRef)
async def delete_chat(request: Request, query: ChatRef) -> object:
    from lib.assistant.http import delete_chat

    return await delete_chat(request, query)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
