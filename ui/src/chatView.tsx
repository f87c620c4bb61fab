// One conversation: a virtualised message list (smooth at 10,000+ messages) with day separators
// and delivery states, the key-change banner, and the composer (Enter sends, Shift+Enter adds a
// line). Messages live only in this component's memory.
import { useEffect, useLayoutEffect, useMemo, useRef, useState, type ClipboardEvent, type DragEvent, type KeyboardEvent } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import { commands, type ChatView, type ContactView, type IpcError, type MessageView } from "./bindings";
import { AttachmentBody, AttachmentViewer, ProgressBar, newTransfer, sendFile, useProgress } from "./attachments";
import { clock, dayKey, dayLabel } from "./dates";
import { MembersPanel } from "./members";
import { ErrorAlert } from "./errorAlert";

type Row = { kind: "day"; key: string; label: string } | { kind: "message"; key: string; message: MessageView };

/** Messages with a separator before each new day. */
export function rowsOf(messages: MessageView[], now: number = Date.now()): Row[] {
  const rows: Row[] = [];
  let day: number | null = null;
  for (const message of messages) {
    const key = dayKey(message.at * 1000);
    if (key !== day) {
      day = key;
      rows.push({ kind: "day", key: `day-${key}`, label: dayLabel(message.at * 1000, now) });
    }
    rows.push({ kind: "message", key: `${message.senderId}-${message.clientId}`, message });
  }
  return rows;
}

const STATUS_WORDS: Record<string, string> = {
  sending: "Sending…",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  failed: "Not sent",
};

export function ChatPane({
  chat,
  contacts,
  revision,
  highlight,
  onVerify,
  online,
  attachmentLimitMb,
  onMembersChanged,
}: {
  chat: ChatView;
  contacts: ContactView[];
  /** Goes up whenever the history changed, so the messages are read again. */
  revision: number;
  /** A message to scroll to and mark, from search. */
  highlight: string | null;
  onVerify: (userId: string) => void;
  online: boolean;
  /** The organization's attachment limit, checked before a large file is even read. */
  attachmentLimitMb: number | null;
  onMembersChanged: () => void;
}) {
  const [messages, setMessages] = useState<MessageView[]>([]);
  const [total, setTotal] = useState(0);
  const [limit, setLimit] = useState(PAGE);
  const [error, setError] = useState<IpcError | null>(null);
  const [sent, setSent] = useState(0);
  const [viewing, setViewing] = useState<MessageView | null>(null);
  const [showMembers, setShowMembers] = useState(false);
  const [dropping, setDropping] = useState(false);
  const [dropped, setDropped] = useState<File[]>([]);

  useEffect(() => {
    let live = true;
    void commands.chatMessages(chat.id, limit, highlight).then((result) => {
      if (!live) return;
      if (result.status === "ok") {
        setMessages(result.data.messages);
        setTotal(result.data.total);
        setError(null);
      } else setError(result.error);
    });
    return () => {
      live = false;
    };
  }, [chat.id, revision, sent, limit, highlight]);

  const changed = contacts.filter((contact) => !contact.me && contact.keyChanged && chat.memberIds.includes(contact.user));
  const other = chat.direct ? chat.memberIds.find((id) => !contacts.some((c) => c.me && c.user === id)) : undefined;

  return (
    <section
      className={dropping ? "chat dropping" : "chat"}
      aria-labelledby="chat-title"
      data-testid="chat"
      data-chat-id={chat.id}
      onDragOver={(event: DragEvent) => {
        if (!chat.active || !event.dataTransfer.types.includes("Files")) return;
        event.preventDefault();
        setDropping(true);
      }}
      onDragLeave={() => setDropping(false)}
      onDrop={(event: DragEvent) => {
        event.preventDefault();
        setDropping(false);
        if (chat.active) setDropped(Array.from(event.dataTransfer.files));
      }}
    >
      <header className="chat-header">
        <div>
          <h2 id="chat-title" data-testid="chat-title">
            {chat.name}
          </h2>
          <p className="detail">
            {chat.patientTag && (
              <span className="tag" data-testid="chat-patient-tag">
                {chat.patientTag}
              </span>
            )}{" "}
            {chat.direct ? "1:1 conversation" : `Care team: ${chat.members.join(", ")}`}
          </p>
        </div>
        {other && (
          <button type="button" onClick={() => onVerify(other)} data-testid="open-safety-number">
            Safety number
          </button>
        )}
        {!chat.direct && chat.active && (
          <button type="button" onClick={() => setShowMembers((shown) => !shown)} aria-expanded={showMembers} data-testid="open-members">
            Members
          </button>
        )}
      </header>
      {showMembers && (
        <MembersPanel
          chat={chat}
          contacts={contacts}
          onClose={() => setShowMembers(false)}
          onChanged={() => {
            onMembersChanged();
            setSent((count) => count + 1);
          }}
        />
      )}
      {changed.map((contact) => (
        <div key={contact.user} className="banner warning" role="alert" data-testid="key-changed-banner">
          <strong>{contact.name}'s security key has changed.</strong> This happens with a new computer,
          or when someone is listening in. Compare safety numbers before sharing patient details.{" "}
          <button type="button" onClick={() => onVerify(contact.user)}>
            Compare safety numbers
          </button>
        </div>
      ))}
      <ErrorAlert error={error} />
      <MessageList
        messages={messages}
        total={total}
        onEarlier={() => setLimit((current) => (messages.length >= current ? current + PAGE : current))}
        highlight={highlight}
        online={online}
        onOpen={setViewing}
        onChanged={() => setSent((count) => count + 1)}
      />
      {chat.active ? (
        <Composer
          chatId={chat.id}
          online={online}
          attachmentLimitMb={attachmentLimitMb}
          dropped={dropped}
          onSent={() => setSent((count) => count + 1)}
        />
      ) : (
        <p className="detail composer-closed">You are no longer a member of this conversation.</p>
      )}
      {dropping && (
        <div className="drop-hint" aria-hidden="true">
          Drop to send to {chat.name}
        </div>
      )}
      {viewing && <AttachmentViewer message={viewing} onClose={() => setViewing(null)} />}
    </section>
  );
}

/** Messages fetched at a time: a few screens' worth. Older ones come as the clinician scrolls up. */
const PAGE = 300;

function MessageList({
  messages,
  total,
  onEarlier,
  highlight,
  online,
  onOpen,
  onChanged,
}: {
  messages: MessageView[];
  /** How many the conversation has; more than `messages` when older ones are not loaded. */
  total: number;
  onEarlier: () => void;
  highlight: string | null;
  online: boolean;
  onOpen: (message: MessageView) => void;
  onChanged: () => void;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const rows = useMemo(() => rowsOf(messages), [messages]);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: (index) => (rows[index]?.kind === "day" ? 40 : 72),
    getItemKey: (index) => rows[index]?.key ?? index,
    overscan: 12,
  });
  const stickToBottom = useRef(true);
  const previous = useRef<{ firstKey: string | undefined; size: number }>({ firstKey: undefined, size: 0 });

  // Older messages arrived above: keep the ones on screen where they were.
  useLayoutEffect(() => {
    const element = scroller.current;
    // The first message, not the first row: a day separator stays first when its day grows.
    const firstKey = rows.find((row) => row.kind === "message")?.key;
    const size = virtualizer.getTotalSize();
    const before = previous.current;
    if (element && before.firstKey && firstKey !== before.firstKey && !stickToBottom.current) {
      element.scrollTop += size - before.size;
    }
    previous.current = { firstKey, size };
  }, [rows, virtualizer]);

  // A search result is scrolled to once; later changes must not pull the view back to it.
  const shownHighlight = useRef<string | null>(null);
  const lastKey = useRef<string | undefined>(undefined);

  // New messages keep the view at the bottom unless the clinician scrolled up to read; a message
  // the clinician just sent always brings the view down to it.
  useLayoutEffect(() => {
    const last = rows[rows.length - 1];
    const sentJustNow =
      last?.kind === "message" && last.message.mine && lastKey.current !== undefined && last.key !== lastKey.current;
    lastKey.current = last?.key;
    if (!highlight) shownHighlight.current = null;
    if (highlight && highlight !== shownHighlight.current) {
      const index = rows.findIndex((row) => row.kind === "message" && row.message.clientId === highlight);
      if (index >= 0) {
        shownHighlight.current = highlight;
        stickToBottom.current = false;
        virtualizer.scrollToIndex(index, { align: "center" });
        return;
      }
    }
    if (sentJustNow) stickToBottom.current = true;
    if (stickToBottom.current && rows.length > 0) virtualizer.scrollToIndex(rows.length - 1, { align: "end" });
  }, [rows, highlight, virtualizer]);

  return (
    <>
      {messages.length < total && (
        <button type="button" className="link earlier" onClick={onEarlier} data-testid="earlier-messages">
          Show earlier messages ({total - messages.length} more)
        </button>
      )}
      <div
        ref={scroller}
        className="messages"
        role="log"
        aria-label="Messages"
        aria-live="polite"
        tabIndex={0}
        data-testid="messages"
        data-count={messages.length}
        data-total={total}
        onScroll={(event) => {
          const element = event.currentTarget;
          stickToBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < 80;
          if (element.scrollTop < 400 && messages.length < total) onEarlier();
        }}
      >
        {messages.length === 0 && <p className="empty">No messages yet. Say hello.</p>}
        <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
          {virtualizer.getVirtualItems().map((item) => {
            const row = rows[item.index];
            if (!row) return null;
            return (
              <div
                key={item.key}
                data-index={item.index}
                ref={virtualizer.measureElement}
                style={{ position: "absolute", top: 0, left: 0, right: 0, transform: `translateY(${item.start}px)` }}
              >
                {row.kind === "day" ? (
                  <div className="day-separator" role="separator" aria-label={row.label}>
                    <span>{row.label}</span>
                  </div>
                ) : (
                  <MessageBubble
                    message={row.message}
                    highlighted={row.message.clientId === highlight}
                    online={online}
                    onOpen={() => onOpen(row.message)}
                    onChanged={onChanged}
                  />
                )}
              </div>
            );
          })}
        </div>
      </div>
    </>
  );
}

function MessageBubble({
  message,
  highlighted,
  online,
  onOpen,
  onChanged,
}: {
  message: MessageView;
  highlighted: boolean;
  online: boolean;
  onOpen: () => void;
  onChanged: () => void;
}) {
  const [editing, setEditing] = useState<string | null>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [error, setError] = useState<IpcError | null>(null);
  const classes = ["message", message.mine ? "mine" : "theirs", highlighted ? "highlighted" : ""].join(" ");
  const waiting = message.mine && message.status === "sending" && !online;

  async function saveEdit() {
    const text = editing?.trim() ?? "";
    if (text === "" || text === message.text) {
      setEditing(null);
      return;
    }
    const result = await commands.editMessage(message.clientId, text);
    if (result.status === "error") setError(result.error);
    else {
      setError(null);
      setEditing(null);
      onChanged();
    }
  }

  async function remove() {
    setConfirmDelete(false);
    const result = await commands.deleteMessage(message.clientId);
    if (result.status === "error") setError(result.error);
    else onChanged();
  }

  return (
    <article
      className={classes}
      data-testid="message"
      data-client-id={message.clientId}
      data-status={message.status}
      data-kind={message.kind}
      aria-label={`${message.mine ? "You" : message.sender} at ${clock(message.at * 1000)}`}
    >
      {!message.mine && <p className="sender">{message.sender}</p>}
      {message.deleted ? (
        <p className="body deleted">This message was deleted.</p>
      ) : editing !== null ? (
        <div className="edit">
          <label className="visually-hidden" htmlFor={`edit-${message.clientId}`}>
            Edit message
          </label>
          <textarea
            id={`edit-${message.clientId}`}
            value={editing}
            autoFocus
            rows={2}
            onChange={(event) => setEditing(event.target.value)}
            onKeyDown={(event) => {
              if (event.key === "Enter" && !event.shiftKey) {
                event.preventDefault();
                void saveEdit();
              } else if (event.key === "Escape") setEditing(null);
            }}
            data-testid="edit-text"
          />
          <button type="button" className="primary" onClick={() => void saveEdit()}>
            Save
          </button>
          <button type="button" onClick={() => setEditing(null)}>
            Cancel
          </button>
        </div>
      ) : message.kind === "attachment" ? (
        <AttachmentBody message={message} onOpen={onOpen} />
      ) : (
        <p className="body" data-testid="message-text">
          {message.text}
        </p>
      )}
      <p className="meta">
        {clock(message.at * 1000)}
        {message.edited && !message.deleted && " · edited"}
        {message.mine && (
          <span className="status" data-testid="message-status">
            {" · "}
            {waiting ? "Waiting for the connection" : (STATUS_WORDS[message.status] ?? message.status)}
          </span>
        )}
        {waiting && (
          <button type="button" className="link" onClick={() => void commands.retryNow()} data-testid="retry-message">
            Retry now
          </button>
        )}
      </p>
      {message.status === "failed" && (
        <p className="detail" role="note">
          This message could not be delivered: you were removed from the conversation before it went out.
        </p>
      )}
      {message.mine && !message.deleted && editing === null && message.status !== "failed" && (
        <div className="message-actions">
          {message.kind === "text" && (
            <button type="button" className="link" onClick={() => setEditing(message.text)} data-testid="edit-message">
              Edit
            </button>
          )}
          <button type="button" className="link" onClick={() => setConfirmDelete(true)} data-testid="delete-message">
            Delete
          </button>
        </div>
      )}
      {confirmDelete && (
        <div className="confirm" role="alertdialog" aria-labelledby={`delete-${message.clientId}`}>
          <p id={`delete-${message.clientId}`}>Delete this message for everyone in the conversation?</p>
          <button type="button" className="danger" autoFocus onClick={() => void remove()} data-testid="confirm-delete">
            Delete for everyone
          </button>
          <button type="button" onClick={() => setConfirmDelete(false)}>
            Cancel
          </button>
        </div>
      )}
      <ErrorAlert error={error} />
    </article>
  );
}

function Composer({
  chatId,
  online,
  attachmentLimitMb,
  dropped,
  onSent,
}: {
  chatId: string;
  online: boolean;
  attachmentLimitMb: number | null;
  /** Files dropped on the conversation, sent as they arrive. */
  dropped: File[];
  onSent: () => void;
}) {
  const [text, setText] = useState("");
  const [error, setError] = useState<IpcError | null>(null);
  const [busy, setBusy] = useState(false);
  const [uploads, setUploads] = useState<{ transfer: string; name: string }[]>([]);
  const input = useRef<HTMLTextAreaElement>(null);
  const picker = useRef<HTMLInputElement>(null);

  async function sendFiles(files: File[]) {
    for (const file of files) {
      const transfer = newTransfer();
      setUploads((current) => [...current, { transfer, name: file.name || "Pasted image" }]);
      const failure = await sendFile(chatId, file, transfer, attachmentLimitMb);
      setUploads((current) => current.filter((upload) => upload.transfer !== transfer));
      setError(failure);
      if (!failure) onSent();
    }
  }

  useEffect(() => {
    if (dropped.length > 0) void sendFiles(dropped);
    // Each drop is a new array; sending again on other changes would send twice.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [dropped]);

  function onPaste(event: ClipboardEvent<HTMLTextAreaElement>) {
    const files = Array.from(event.clipboardData.files);
    if (files.length === 0) return;
    event.preventDefault();
    void sendFiles(files);
  }

  useEffect(() => {
    input.current?.focus();
  }, [chatId]);

  async function send() {
    const body = text.trim();
    if (body === "" || busy) return;
    setBusy(true);
    const result = await commands.sendText(chatId, body);
    setBusy(false);
    if (result.status === "error") {
      // The text stays in the box, so nothing typed is lost.
      setError(result.error);
      return;
    }
    setError(null);
    setText("");
    // The message is stored (sent, or queued while offline): read the history again.
    onSent();
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      void send();
    }
  }

  return (
    <form
      className="composer"
      onSubmit={(event) => {
        event.preventDefault();
        void send();
      }}
    >
      <ErrorAlert error={error} testId="send-error" />
      <label htmlFor="composer-text" className="visually-hidden">
        Message
      </label>
      <textarea
        id="composer-text"
        ref={input}
        rows={2}
        value={text}
        placeholder={online ? "Write a message — Enter sends, Shift+Enter adds a line" : "Offline — messages are kept and sent when the relay is back"}
        onChange={(event) => setText(event.target.value)}
        onKeyDown={onKeyDown}
        onPaste={onPaste}
        data-testid="composer"
      />
      <input
        ref={picker}
        type="file"
        multiple
        className="visually-hidden"
        tabIndex={-1}
        aria-hidden="true"
        data-testid="file-input"
        onChange={(event) => {
          const files = Array.from(event.target.files ?? []);
          event.target.value = "";
          void sendFiles(files);
        }}
      />
      <button type="button" onClick={() => picker.current?.click()} data-testid="attach" title="Attach a file (or drop or paste one)">
        Attach file
      </button>
      <button type="submit" className="primary" disabled={busy || text.trim() === ""} data-testid="send">
        Send
      </button>
      {uploads.map((upload) => (
        <Upload key={upload.transfer} transfer={upload.transfer} name={upload.name} />
      ))}
    </form>
  );
}

function Upload({ transfer, name }: { transfer: string; name: string }) {
  const percent = useProgress(transfer);
  return <ProgressBar label={percent === null ? `Encrypting ${name}…` : `Uploading ${name}`} percent={percent} />;
}
