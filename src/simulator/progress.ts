/**
 * A progress bar for long simulator commands (calibrate, simulate) on stderr: redrawn in place on a
 * terminal, one line per 10% otherwise (CI logs, pipes).
 */

export interface Progress {
  /** Share done in [0, 1], with an optional note (e.g. "3.2 simulated h/min"). */
  update(done: number, note?: string): void;
  /** Ends the bar's line. */
  end(note?: string): void;
}

export const NO_PROGRESS: Progress = { update() {}, end() {} };

export function progressBar(label: string, out: NodeJS.WriteStream = process.stderr, width = 30): Progress {
  let lastDecile = -1;
  let lastDraw = 0;
  const line = (done: number, note?: string) => {
    const filled = Math.round(Math.min(Math.max(done, 0), 1) * width);
    const pct = `${(done * 100).toFixed(0)}%`.padStart(4);
    return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${pct}${note ? ` ${note}` : ''}`;
  };
  return {
    update(done, note) {
      if (out.isTTY) {
        const now = Date.now();
        if (now - lastDraw < 100 && done < 1) return;
        lastDraw = now;
        out.write(`\r${line(done, note)}\u001b[K`);
        return;
      }
      const decile = Math.floor(done * 10);
      if (decile > lastDecile) {
        lastDecile = decile;
        out.write(`${line(done, note)}\n`);
      }
    },
    end(note) {
      if (out.isTTY) out.write(`\r${line(1, note)}\u001b[K\n`);
      else if (lastDecile < 10) out.write(`${line(1, note)}\n`);
    },
  };
}
