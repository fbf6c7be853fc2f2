import { Upload } from "@/components/Upload";
import { requireUser } from "@/lib/require-user";

export default async function UploadPage() {
  await requireUser("/upload");
  return (
    <>
      <h1>Upload documents</h1>
      <p>Text, Markdown, HTML, PDF, DOCX, CSV, JSON or code; each is extracted, chunked, embedded and indexed.</p>
      <Upload />
    </>
  );
}
