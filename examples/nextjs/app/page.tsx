import { Chat } from "@/components/Chat";
import { requireUser } from "@/lib/require-user";

export default async function ChatPage() {
  await requireUser("/");
  return (
    <>
      <h1>Chat</h1>
      <p><code>local/echo</code> answers offline; any <code>provider/model</code> with its key set on the bundle works too.</p>
      <Chat />
    </>
  );
}
