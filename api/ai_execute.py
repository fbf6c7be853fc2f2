"""POST /api/ai_execute: a prompt or a conversation on any provider, as JSON or a stream for useChat."""

from lib.gateway.chain import complete_chat, stream_chat
from lib.gateway.request import ExecuteRequest, call_context, json_output, to_call
from lib.gateway.ui_stream import stream_response
from lib.web import Endpoint, Request

app = Endpoint("ai_execute")


@app.post(ExecuteRequest)
async def ai_execute(request: Request, body: ExecuteRequest) -> object:
    call, ctx = to_call(body, request.settings), call_context(request, body)
    if not body.streams:
        result = await complete_chat(call, ctx)
        return {"id": request.request_id, **result.as_dict(), **json_output(body, result.response.text),
                "metadata": body.metadata}
    # refusals and failures before the first token are still JSON errors (see stream_response)
    return await stream_response(stream_chat(call, ctx), protocol=body.protocol, message_id=body.messageId)


if __name__ == "__main__":
    from lib.cli import run_function

    run_function(app)
