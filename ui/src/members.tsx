// A care team's members: who is in it, adding contacts from the directory and removing members.
// Every change is an MLS commit, so it can take a moment and can fail; errors say why.
import { useState } from "react";
import { commands, type ChatView, type ContactView, type IpcError } from "./bindings";
import { ErrorAlert } from "./errorAlert";

export function MembersPanel({
  chat,
  contacts,
  onClose,
  onChanged,
}: {
  chat: ChatView;
  contacts: ContactView[];
  onClose: () => void;
  onChanged: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<IpcError | null>(null);
  const [filter, setFilter] = useState("");
  const me = contacts.find((contact) => contact.me)?.user;
  const byId = new Map(contacts.map((contact) => [contact.user, contact]));
  const candidates = contacts.filter(
    (contact) =>
      !contact.me && !chat.memberIds.includes(contact.user) && contact.name.toLowerCase().includes(filter.trim().toLowerCase()),
  );

  async function change(action: "add" | "remove", userId: string) {
    setBusy(true);
    const result = action === "add" ? await commands.addMembers(chat.id, [userId]) : await commands.removeMembers(chat.id, [userId]);
    setBusy(false);
    if (result.status === "error") setError(result.error);
    else {
      setError(null);
      onChanged();
    }
  }

  return (
    <section className="members" aria-labelledby="members-heading" data-testid="members-panel">
      <header className="panel-header">
        <h3 id="members-heading">Members of {chat.name}</h3>
        <button type="button" className="quiet" onClick={onClose}>
          Close
        </button>
      </header>
      <ErrorAlert error={error} />
      <ul className="member-list">
        {chat.memberIds.map((id, index) => (
          <li key={id}>
            <span>{byId.get(id)?.name ?? chat.members[index] ?? "Unknown member"}</span>
            {id === me ? (
              <span className="detail"> (you)</span>
            ) : (
              <button
                type="button"
                className="link"
                disabled={busy}
                onClick={() => void change("remove", id)}
                aria-label={`Remove ${byId.get(id)?.name ?? "member"} from ${chat.name}`}
              >
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      <label htmlFor="member-filter">Add someone</label>
      <input
        id="member-filter"
        type="search"
        value={filter}
        placeholder="Search the directory"
        onChange={(event) => setFilter(event.target.value)}
      />
      <ul className="member-list">
        {candidates.slice(0, 20).map((contact) => (
          <li key={contact.user}>
            <span>
              {contact.name} <span className="detail">{contact.role}</span>
            </span>
            <button
              type="button"
              className="link"
              disabled={busy}
              onClick={() => void change("add", contact.user)}
              aria-label={`Add ${contact.name} to ${chat.name}`}
            >
              Add
            </button>
          </li>
        ))}
        {candidates.length === 0 && <li className="detail">No one else to add.</li>}
      </ul>
    </section>
  );
}
