import { Ask } from "@/components/Ask";
import { requireUser } from "@/lib/require-user";

export default async function AskPage() {
  await requireUser("/ask");
  return (
    <>
      <h1>Ask your documents</h1>
      <p>Answers cite the passages they come from. Without a model configured, the offline extractive answer quotes them.</p>
      <Ask />
    </>
  );
}
