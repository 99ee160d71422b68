/** The user and password of a `Basic` Authorization value (RFC 7617), or null when malformed. */
export function decodeBasic(value: string): { user: string; password: string } | null {
  if (value.length > 4096) return null;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
