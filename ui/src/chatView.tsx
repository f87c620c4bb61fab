// One conversation: a virtualised message list (smooth at 10,000+ messages) with day separators
// and delivery states, the key-change banner, and the composer (Enter sends, Shift+Enter adds a
// line). Messages live only in this component's memory.
import { useEffect, useLayoutEffect, useMemo, useRef, useState, type KeyboardEvent } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import { commands, type ChatView, type ContactView, type IpcError, type MessageView } from "./bindings";
import { clock, dayKey, dayLabel } from "./dates";

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
};

export function ChatPane({
  chat,
  contacts,
  revision,
  highlight,
  onVerify,
  online,
}: {
  chat: ChatView;
  contacts: ContactView[];
  /** Goes up whenever the history changed, so the messages are read again. */
  revision: number;
  /** A message to scroll to and mark, from search. */
  highlight: string | null;
  onVerify: (userId: string) => void;
  online: boolean;
}) {
  const [messages, setMessages] = useState<MessageView[]>([]);
  const [error, setError] = useState<IpcError | null>(null);
  const [sent, setSent] = useState(0);

  useEffect(() => {
    let live = true;
    void commands.chatMessages(chat.id).then((result) => {
      if (!live) return;
      if (result.status === "ok") {
        setMessages(result.data);
        setError(null);
      } else setError(result.error);
    });
    return () => {
      live = false;
    };
  }, [chat.id, revision, sent]);

  const changed = contacts.filter((contact) => !contact.me && contact.keyChanged && chat.memberIds.includes(contact.user));
  const other = chat.direct ? chat.memberIds.find((id) => !contacts.some((c) => c.me && c.user === id)) : undefined;

  return (
    <section className="chat" aria-labelledby="chat-title" data-testid="chat" data-chat-id={chat.id}>
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
      </header>
      {changed.map((contact) => (
        <div key={contact.user} className="banner warning" role="alert" data-testid="key-changed-banner">
          <strong>{contact.name}'s security key has changed.</strong> This happens with a new computer,
          or when someone is listening in. Compare safety numbers before sharing patient details.{" "}
          <button type="button" onClick={() => onVerify(contact.user)}>
            Compare safety numbers
          </button>
        </div>
      ))}
      {error && (
        <p role="alert" className="error">
          {error.message}
        </p>
      )}
      <MessageList messages={messages} highlight={highlight} />
      {chat.active ? (
        <Composer chatId={chat.id} online={online} onSent={() => setSent((count) => count + 1)} />
      ) : (
        <p className="detail composer-closed">You are no longer a member of this conversation.</p>
      )}
    </section>
  );
}

function MessageList({ messages, highlight }: { messages: MessageView[]; highlight: string | null }) {
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

  // New messages keep the view at the bottom unless the clinician scrolled up to read.
  useLayoutEffect(() => {
    if (highlight) {
      const index = rows.findIndex((row) => row.kind === "message" && row.message.clientId === highlight);
      if (index >= 0) {
        virtualizer.scrollToIndex(index, { align: "center" });
        return;
      }
    }
    if (stickToBottom.current && rows.length > 0) virtualizer.scrollToIndex(rows.length - 1, { align: "end" });
  }, [rows, highlight, virtualizer]);

  return (
    <div
      ref={scroller}
      className="messages"
      role="log"
      aria-label="Messages"
      aria-live="polite"
      tabIndex={0}
      data-testid="messages"
      data-count={messages.length}
      onScroll={(event) => {
        const element = event.currentTarget;
        stickToBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < 80;
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
                <MessageBubble message={row.message} highlighted={row.message.clientId === highlight} />
              )}
            </div>
          );
        })}
      </div>
    </div>
  );
}

function MessageBubble({ message, highlighted }: { message: MessageView; highlighted: boolean }) {
  const classes = ["message", message.mine ? "mine" : "theirs", highlighted ? "highlighted" : ""].join(" ");
  return (
    <article
      className={classes}
      data-testid="message"
      data-client-id={message.clientId}
      data-status={message.status}
      aria-label={`${message.mine ? "You" : message.sender} at ${clock(message.at * 1000)}`}
    >
      {!message.mine && <p className="sender">{message.sender}</p>}
      {message.deleted ? (
        <p className="body deleted">This message was deleted.</p>
      ) : message.kind === "attachment" ? (
        <p className="body attachment">
          📎 {message.text}
          {message.size !== null && message.size !== undefined && (
            <span className="detail"> ({formatSize(message.size)})</span>
          )}
        </p>
      ) : (
        <p className="body" data-testid="message-text">
          {message.text}
        </p>
      )}
      <p className="meta">
        {clock(message.at * 1000)}
        {message.edited && " · edited"}
        {message.mine && (
          <span className="status" data-testid="message-status">
            {" · "}
            {STATUS_WORDS[message.status] ?? message.status}
          </span>
        )}
      </p>
    </article>
  );
}

export function formatSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(0)} kB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

function Composer({
  chatId,
  online,
  onSent,
}: {
  chatId: string;
  online: boolean;
  onSent: () => void;
}) {
  const [text, setText] = useState("");
  const [error, setError] = useState<IpcError | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLTextAreaElement>(null);

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
      {error && (
        <p role="alert" className="error" data-testid="send-error" data-code={error.code}>
          {error.message}
        </p>
      )}
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
        data-testid="composer"
      />
      <button type="submit" className="primary" disabled={busy || text.trim() === ""} data-testid="send">
        Send
      </button>
    </form>
  );
}
