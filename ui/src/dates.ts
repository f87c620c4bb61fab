// Times as a clinician reads them: "14:05" today, "Yesterday", or the date; and the day label
// that separates messages of different days.

const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const date = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });

function startOfDay(ms: number): number {
  const day = new Date(ms);
  day.setHours(0, 0, 0, 0);
  return day.getTime();
}

/** The key that groups messages of one local day. */
export function dayKey(ms: number): number {
  return startOfDay(ms);
}

/** A day separator's label. */
export function dayLabel(ms: number, now: number = Date.now()): string {
  const days = Math.round((startOfDay(now) - startOfDay(ms)) / 86_400_000);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return weekday.format(ms);
}

/** A message's time of day. */
export function clock(ms: number): string {
  return time.format(ms);
}

/** Last activity in the conversation list: the time today, else the day. */
export function lastActivity(ms: number, now: number = Date.now()): string {
  if (ms <= 0) return "";
  const days = Math.round((startOfDay(now) - startOfDay(ms)) / 86_400_000);
  if (days === 0) return time.format(ms);
  if (days === 1) return "Yesterday";
  return date.format(ms);
}
