// The test suite's SMTP server: accepts every message on 127.0.0.1:<port> (0: any free port),
// prints `listening <port>` once ready and then one JSON line per message received
// ({"from", "to", "data"}). An argument `refuse` makes it answer every message with 451.
import { SMTPServer } from "smtp-server";

const port = Number(process.argv[2] ?? 0);
const refuse = process.argv[3] === "refuse";

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS"],
  banner: "monti test SMTP server",
  onData(stream, session, callback) {
    const chunks = [];
    stream.on("data", (chunk) => chunks.push(chunk));
    stream.on("end", () => {
      if (refuse) {
        const error = new Error("mailbox busy, try again later");
        error.responseCode = 451;
        return callback(error);
      }
      const message = {
        from: session.envelope.mailFrom && session.envelope.mailFrom.address,
        to: session.envelope.rcptTo.map((r) => r.address),
        data: Buffer.concat(chunks).toString("utf8"),
      };
      process.stdout.write(JSON.stringify(message) + "\n");
      callback();
    });
  },
});

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.server.address().port}\n`);
});
