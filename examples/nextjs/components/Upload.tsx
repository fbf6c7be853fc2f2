"use client";
// Upload a document with its progress streamed (server-sent events), then list and delete the
// namespace's documents, all through the typed client (openapi-fetch over the generated types).
import { readEvents, type DocumentSummary, type UploadEvent } from "@ai-backend/client";
import { useCallback, useEffect, useState } from "react";
import { ErrorNotice } from "@/components/ErrorNotice";
import { api } from "@/lib/api";

type Failure = { error: unknown; response?: Response };

export function Upload() {
  const [namespace, setNamespace] = useState("default");
  const [file, setFile] = useState<File | null>(null);
  const [events, setEvents] = useState<UploadEvent[]>([]);
  const [documents, setDocuments] = useState<DocumentSummary[] | null>(null);
  const [failure, setFailure] = useState<Failure | null>(null);
  const [busy, setBusy] = useState(false);

  const refresh = useCallback(async (ns: string) => {
    const { data, error, response } = await api.GET("/api/upload", { params: { query: { namespace: ns } } });
    if (data) setDocuments(data.documents);
    else setFailure({ error, response });
  }, []);

  useEffect(() => {
    void refresh("default");
  }, [refresh]);

  async function upload(e: React.FormEvent) {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    setEvents([]);
    setFailure(null);
    try {
      const form = new FormData();
      form.set("file", file);
      form.set("namespace", namespace);
      form.set("stream", "true");
      // openapi-fetch sends FormData as multipart/form-data; the document lists that body too
      const { response, error } = await api.POST("/api/upload", { body: form as never, parseAs: "stream" });
      if (error !== undefined || !response.body) {
        setFailure({ error, response }); // refused before it started: a JSON error with its status
        return;
      }
      for await (const event of readEvents(response.body)) {
        setEvents((seen) => [...seen, event]);
        if (event.type === "error") setFailure({ error: { error: { ...event.error, request_id: response.headers.get("x-request-id") } } });
      }
      await refresh(namespace);
    } catch (error) {
      setFailure({ error });
    } finally {
      setBusy(false);
    }
  }

  async function remove(document: DocumentSummary) {
    const { error, response } = await api.DELETE("/api/upload", {
      params: { query: { namespace: document.namespace, document_id: document.document_id } },
    });
    if (error) setFailure({ error, response });
    await refresh(namespace);
  }

  const embed = [...events].reverse().find((e) => e.type === "progress" && e.stage === "embed");
  const result = events.find((e) => e.type === "result");

  return (
    <section className="upload" data-testid="upload">
      <form onSubmit={upload}>
        <label>
          Namespace <input name="namespace" value={namespace} onChange={(e) => setNamespace(e.target.value)}
                           onBlur={() => void refresh(namespace)} />
        </label>
        <input type="file" name="file" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        <button type="submit" disabled={!file || busy}>Upload</button>
      </form>

      {events.length ? (
        <ol className="progress" data-testid="progress">
          {events.map((event, i) => (
            <li key={i} data-testid="stage">
              {event.type === "progress" ? event.stage : event.type}
              {event.type === "progress" && event.stage === "embed" && event.chunks
                ? ` ${event.chunks_done ?? 0}/${event.chunks} chunks` : ""}
            </li>
          ))}
        </ol>
      ) : null}
      {embed && embed.type === "progress" && embed.chunks ? (
        <progress value={embed.chunks_done ?? 0} max={embed.chunks} />
      ) : null}
      {result && result.type === "result" ? (
        <p data-testid="result">
          {result.source}: {result.status}, {result.chunks} chunks ({result.embedding_model})
        </p>
      ) : null}
      {failure ? <ErrorNotice error={failure.error} response={failure.response} onDismiss={() => setFailure(null)} /> : null}

      <h2>Documents in “{namespace}”</h2>
      {documents?.length === 0 ? <p>None yet.</p> : null}
      <table data-testid="documents">
        <tbody>
          {documents?.map((d) => (
            <tr key={d.document_id}>
              <td>{d.title ?? d.source}{d.title ? <small> {d.source}</small> : null}</td>
              <td>{d.chunks} chunks</td>
              <td>{new Date(d.updated_at).toLocaleString()}</td>
              <td><button type="button" onClick={() => void remove(d)}>Delete</button></td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
