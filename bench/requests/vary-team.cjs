// autocannon setupRequest (runs in its worker thread): a fresh team per POST, so every
// request creates an instance instead of hitting the one-per-owner rule.
const run = Math.random().toString(36).slice(2, 8);
let n = 0;
module.exports = (req) => ({ ...req, body: JSON.stringify({ challenge: 'web', team: `team-${run}-${n++}` }) });
