/** A number of seconds in words for a message to people: "5 minutes", "1 minute", "90 seconds". */
export function durationWords(seconds: number): string {
  if (seconds % 60 === 0) return `${seconds / 60} minute${seconds === 60 ? '' : 's'}`;
  return `${seconds} second${seconds === 1 ? '' : 's'}`;
}
