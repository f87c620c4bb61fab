// The signed-in window: the conversation list with unread counts, the open conversation, and the
// panels for a new chat, search, a safety number and settings. Everything shown is fetched from
// Rust and kept in memory only; events say when to fetch again.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import {
  commands,
  events,
  type AccountView,
  type AppStatus,
  type ChatView,
  type ConnectionStatus,
  type ContactView,
  type IpcError,
  type SearchHitView,
  type SettingView,
} from "./bindings";
import { ChatPane } from "./chatView";
import { lastActivity } from "./dates";
import { VerificationPanel } from "./verification";
import { ErrorAlert } from "./errorAlert";

type Panel =
  | { kind: "none" }
  | { kind: "newChat" }
  | { kind: "search" }
  | { kind: "settings" }
  | { kind: "verify"; userId: string };

export function Messenger({
  status,
  account,
  settings,
}: {
  status: AppStatus;
  account: AccountView;
  settings: React.ReactNode;
}) {
  const [chats, setChats] = useState<ChatView[]>([]);
  const [contacts, setContacts] = useState<ContactView[]>([]);
  const [selected, setSelected] = useState<string | null>(null);
  const [highlight, setHighlight] = useState<string | null>(null);
  const [panel, setPanel] = useState<Panel>({ kind: "none" });
  const [revision, setRevision] = useState(0);
  const [connection, setConnection] = useState<ConnectionStatus>({ online: true, queued: 0, problem: null });
  const [nameNote, setNameNote] = useState(account.nameNote ?? null);

  const refresh = useCallback(async () => {
    const [chatList, contactList] = await Promise.all([commands.listChats(), commands.listContacts()]);
    if (chatList.status === "ok") setChats(chatList.data);
    if (contactList.status === "ok") setContacts(contactList.data);
  }, []);

  useEffect(() => {
    void refresh();
    const stops: Promise<() => void>[] = [
      events.historyChanged.listen(() => {
        setRevision((value) => value + 1);
        void refresh();
      }),
      events.connectionStatus.listen((event) => setConnection(event.payload)),
      events.openChatRequested.listen((event) => open(event.payload.chatId)),
    ];
    return () => {
      for (const stop of stops) void stop.then((unlisten) => unlisten());
    };
  }, [refresh]);

  function open(chatId: string, messageId: string | null = null) {
    setSelected(chatId);
    setHighlight(messageId);
    setPanel((current) => (current.kind === "verify" ? current : { kind: "none" }));
  }

  // The open conversation is read, and raises no notification while the window has focus.
  useEffect(() => {
    void commands.viewChat(selected).then(() => refresh());
  }, [selected, revision, refresh]);

  const chat = chats.find((candidate) => candidate.id === selected) ?? null;

  return (
    <div className="messenger" data-testid="messenger">
      <aside className="sidebar" aria-label="Conversations">
        <header className="me">
          <strong data-testid="account-name">{account.name}</strong>
          <span className="detail">{account.role}</span>
        </header>
        <ConnectionBanner connection={connection} />
        {nameNote && (
          <div className="banner" role="status" data-testid="name-note">
            {nameNote}{" "}
            <button type="button" className="link" onClick={() => setNameNote(null)}>
              OK
            </button>
          </div>
        )}
        <div className="sidebar-actions">
          <button type="button" className="primary" onClick={() => setPanel({ kind: "newChat" })} data-testid="new-chat">
            New chat
          </button>
          <button type="button" onClick={() => setPanel({ kind: "search" })} data-testid="open-search">
            Search
          </button>
          <button type="button" onClick={() => setPanel({ kind: "settings" })} data-testid="open-settings">
            Settings
          </button>
        </div>
        <ChatList chats={chats} selected={selected} onOpen={(id) => open(id)} />
      </aside>
      <main className="main-pane">
        {panel.kind === "newChat" && (
          <NewChat
            onClose={() => setPanel({ kind: "none" })}
            onOpened={(id) => {
              void refresh();
              open(id);
            }}
          />
        )}
        {panel.kind === "search" && (
          <Search chats={chats} onClose={() => setPanel({ kind: "none" })} onOpen={(hit) => open(hit.chatId, hit.clientId)} />
        )}
        {panel.kind === "settings" && (
          <section className="panel" aria-labelledby="settings-panel-heading">
            <header className="panel-header">
              <h2 id="settings-panel-heading">Settings and security</h2>
              <button type="button" className="quiet" onClick={() => setPanel({ kind: "none" })}>
                Close
              </button>
            </header>
            <p className="detail">
              Relay: <code>{account.relayUrl}</code>. Profile folder: <code>{status.dataDir}</code>.
            </p>
            <NotificationChoice settings={status.settings} />
            {settings}
          </section>
        )}
        {panel.kind === "verify" && (
          <VerificationPanel userId={panel.userId} onClose={() => setPanel({ kind: "none" })} onVerified={() => void refresh()} />
        )}
        {chat ? (
          <ChatPane
            // A fresh pane per conversation: a draft, an edit or a scroll position never carries
            // over to another conversation, where it could be sent to the wrong team.
            key={chat.id}
            chat={chat}
            contacts={contacts}
            revision={revision}
            highlight={highlight}
            online={connection.online}
            attachmentLimitMb={attachmentLimit(status.settings)}
            onMembersChanged={() => void refresh()}
            onVerify={(userId) => setPanel({ kind: "verify", userId })}
          />
        ) : (
          panel.kind === "none" && (
            <div className="placeholder">
              <h1>Welcome, {account.name}</h1>
              <p className="lead">Choose a conversation, or start a new chat.</p>
            </div>
          )
        )}
      </main>
    </div>
  );
}

function ConnectionBanner({ connection }: { connection: ConnectionStatus }) {
  if (connection.online && connection.queued === 0 && !connection.problem) return null;
  return (
    <div
      className={connection.online ? "banner info" : "banner warning"}
      role="status"
      data-testid="connection-banner"
      data-online={connection.online}
    >
      {connection.online ? "Sending…" : "Offline — reconnecting automatically."}
      {connection.queued > 0 && (
        <>
          {" "}
          <span data-testid="outbox-count">{connection.queued}</span> waiting to send.
        </>
      )}
      {connection.problem && <p className="detail">{connection.problem}</p>}
      {!connection.online && (
        <button type="button" className="quiet" onClick={() => void commands.retryNow()}>
          Retry now
        </button>
      )}
    </div>
  );
}

function ChatList({ chats, selected, onOpen }: { chats: ChatView[]; selected: string | null; onOpen: (id: string) => void }) {
  if (chats.length === 0) return <p className="detail empty">No conversations yet.</p>;
  return (
    <ul className="chat-list" data-testid="chat-list">
      {chats.map((chat) => (
        <li key={chat.id}>
          <button
            type="button"
            className={chat.id === selected ? "chat-item selected" : "chat-item"}
            aria-current={chat.id === selected ? "true" : undefined}
            onClick={() => onOpen(chat.id)}
            data-testid="chat-item"
            data-chat-id={chat.id}
            data-unread={chat.unread}
          >
            <span className="chat-item-name">{chat.name || "Conversation"}</span>
            <span className="chat-item-time">{lastActivity(chat.lastActivity * 1000)}</span>
            {chat.patientTag && <span className="tag">{chat.patientTag}</span>}
            {chat.unread > 0 && (
              <span className="unread" aria-label={`${chat.unread} unread`} data-testid="unread-count">
                {chat.unread}
              </span>
            )}
          </button>
        </li>
      ))}
    </ul>
  );
}

function NewChat({ onClose, onOpened }: { onClose: () => void; onOpened: (chatId: string) => void }) {
  const [contacts, setContacts] = useState<ContactView[]>([]);
  const [query, setQuery] = useState("");
  const [team, setTeam] = useState(false);
  const [members, setMembers] = useState<string[]>([]);
  const [name, setName] = useState("");
  const [tag, setTag] = useState("");
  const [error, setError] = useState<IpcError | null>(null);
  const [busy, setBusy] = useState(false);

  // The directory as the relay has it now: colleagues enrolled a minute ago are in it.
  useEffect(() => {
    let live = true;
    void commands.listContacts().then((result) => {
      if (!live) return;
      if (result.status === "ok") setContacts(result.data);
      else setError(result.error);
    });
    return () => {
      live = false;
    };
  }, []);

  const others = contacts.filter(
    (contact) => !contact.me && `${contact.name} ${contact.role}`.toLowerCase().includes(query.trim().toLowerCase()),
  );

  async function startDirect(userId: string) {
    setBusy(true);
    const result = await commands.openDirectChat(userId);
    setBusy(false);
    if (result.status === "ok") onOpened(result.data);
    else setError(result.error);
  }

  async function createTeam(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    const result = await commands.createTeam(name, members, tag.trim() === "" ? null : tag);
    setBusy(false);
    if (result.status === "ok") onOpened(result.data);
    else setError(result.error);
  }

  return (
    <section className="panel" aria-labelledby="new-chat-heading" data-testid="new-chat-panel" aria-busy={busy}>
      <header className="panel-header">
        <h2 id="new-chat-heading">New chat</h2>
        <button type="button" className="quiet" onClick={onClose}>
          Close
        </button>
      </header>
      <div className="segmented" role="radiogroup" aria-label="Kind of chat">
        <label>
          <input type="radio" name="kind" checked={!team} onChange={() => setTeam(false)} /> With one colleague
        </label>
        <label>
          <input type="radio" name="kind" checked={team} onChange={() => setTeam(true)} data-testid="kind-team" /> Care team
        </label>
      </div>
      <label htmlFor="directory-search">Find a colleague</label>
      <input
        id="directory-search"
        type="search"
        value={query}
        onChange={(event) => setQuery(event.target.value)}
        placeholder="Name or role"
        data-testid="directory-search"
        autoFocus
      />
      <ErrorAlert error={error} testId="new-chat-error" />
      {team ? (
        <form onSubmit={(event) => void createTeam(event)}>
          <fieldset>
            <legend>Members</legend>
            {others.map((contact) => (
              <label key={contact.user} className="check">
                <input
                  type="checkbox"
                  checked={members.includes(contact.user)}
                  onChange={(event) =>
                    setMembers((current) =>
                      event.target.checked ? [...current, contact.user] : current.filter((id) => id !== contact.user),
                    )
                  }
                />{" "}
                {contact.name} <span className="detail">{contact.role}</span>
              </label>
            ))}
          </fieldset>
          <label htmlFor="team-name">Team name</label>
          <input id="team-name" required value={name} onChange={(event) => setName(event.target.value)} data-testid="team-name" />
          <label htmlFor="team-tag">Patient tag (optional)</label>
          <input id="team-tag" value={tag} onChange={(event) => setTag(event.target.value)} placeholder="e.g. Bed 12" data-testid="team-tag" />
          <button type="submit" className="primary" disabled={busy || members.length === 0 || name.trim() === ""} data-testid="create-team">
            Create care team
          </button>
        </form>
      ) : (
        <ul className="directory" data-testid="directory">
          {others.length === 0 && <li className="detail">No colleague matches.</li>}
          {others.map((contact) => (
            <li key={contact.user}>
              <button type="button" onClick={() => void startDirect(contact.user)} disabled={busy} data-testid="directory-entry" data-user={contact.user}>
                <strong>{contact.name}</strong> <span className="detail">{contact.role}</span>
                {contact.verified && <span className="verified-mark"> ✓ verified</span>}
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Splits a snippet at the match markers Rust put around matched words. */
export function snippetParts(snippet: string): { text: string; match: boolean }[] {
  const parts: { text: string; match: boolean }[] = [];
  let rest = snippet;
  while (rest.length > 0) {
    const start = rest.indexOf("\u0001");
    if (start < 0) {
      parts.push({ text: rest, match: false });
      break;
    }
    if (start > 0) parts.push({ text: rest.slice(0, start), match: false });
    const end = rest.indexOf("\u0002", start);
    const stop = end < 0 ? rest.length : end;
    parts.push({ text: rest.slice(start + 1, stop), match: true });
    rest = end < 0 ? "" : rest.slice(end + 1);
  }
  return parts;
}

function Search({
  chats,
  onClose,
  onOpen,
}: {
  chats: ChatView[];
  onClose: () => void;
  onOpen: (hit: SearchHitView) => void;
}) {
  const [query, setQuery] = useState("");
  const [tag, setTag] = useState("");
  const [hits, setHits] = useState<SearchHitView[] | null>(null);
  const tags = [...new Set(chats.map((chat) => chat.patientTag).filter((t): t is string => !!t))].sort();

  useEffect(() => {
    if (query.trim() === "") {
      setHits(null);
      return;
    }
    let live = true;
    const timer = setTimeout(() => {
      void commands.searchMessages(query, tag === "" ? null : tag).then((result) => {
        if (live && result.status === "ok") setHits(result.data);
      });
    }, 150);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [query, tag]);

  return (
    <section className="panel" aria-labelledby="search-heading" data-testid="search-panel">
      <header className="panel-header">
        <h2 id="search-heading">Search messages</h2>
        <button type="button" className="quiet" onClick={onClose}>
          Close
        </button>
      </header>
      <label htmlFor="search-query">Words to find</label>
      <input id="search-query" type="search" autoFocus value={query} onChange={(event) => setQuery(event.target.value)} data-testid="search-query" />
      <label htmlFor="search-tag">Patient</label>
      <select id="search-tag" value={tag} onChange={(event) => setTag(event.target.value)} data-testid="search-tag">
        <option value="">All conversations</option>
        {tags.map((t) => (
          <option key={t} value={t}>
            {t}
          </option>
        ))}
      </select>
      {hits !== null && (
        <ul className="search-results" aria-live="polite" data-testid="search-results">
          {hits.length === 0 && <li className="detail">Nothing found.</li>}
          {hits.map((hit) => (
            <li key={`${hit.chatId}-${hit.clientId}`}>
              <button type="button" onClick={() => onOpen(hit)} data-testid="search-hit">
                <span className="detail">
                  {hit.chat}
                  {hit.patientTag ? ` · ${hit.patientTag}` : ""} · {hit.sender} · {lastActivity(hit.at * 1000)}
                </span>
                <span className="snippet">
                  {snippetParts(hit.snippet).map((part, index) => (part.match ? <mark key={index}>{part.text}</mark> : <span key={index}>{part.text}</span>))}
                </span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** The attachment limit in MB from the settings in force; null when there is none. */
export function attachmentLimit(settings: SettingView[]): number | null {
  const value = settings.find((setting) => setting.key === "attachment_max_mb")?.value ?? "";
  const megabytes = Number.parseInt(value, 10);
  return Number.isFinite(megabytes) && megabytes > 0 ? megabytes : null;
}

const LEVEL_OF_VALUE: Record<string, string> = {
  "No notifications": "none",
  '"New secure message" only': "generic",
  "Sender's name": "sender",
  "Sender and message": "content",
};

/** How much notifications say. The organization may fix it; a clinician can never choose to
 * show message text, since that is on screen for anyone passing by. */
function NotificationChoice({ settings }: { settings: SettingView[] }) {
  const setting = settings.find((candidate) => candidate.key === "notification_level");
  const [error, setError] = useState<IpcError | null>(null);
  if (!setting) return null;
  const current = LEVEL_OF_VALUE[setting.value] ?? "generic";
  return (
    <fieldset className="notification-choice" disabled={setting.managed} data-testid="notification-choice">
      <legend>Notifications</legend>
      {setting.managed && <p className="managed">Managed by your organization: {setting.value}.</p>}
      {[
        ["none", "None"],
        ["generic", "Only \u201cNew secure message\u201d (recommended)"],
        ["sender", "The sender\u2019s name, never the message"],
      ].map(([level, label]) => (
        <label key={level} className="choice">
          <input
            type="radio"
            name="notification-level"
            value={level}
            checked={current === level}
            onChange={async () => {
              const result = await commands.setNotificationLevel(level ?? "generic");
              setError(result.status === "error" ? result.error : null);
            }}
            data-testid={`notification-${level}`}
          />{" "}
          {label}
        </label>
      ))}
      <ErrorAlert error={error} />
    </fieldset>
  );
}
