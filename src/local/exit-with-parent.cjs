// Preloaded (node --require) into every child the supervisor starts. Signal handlers in the parent cannot run when
// it is SIGKILLed or crashes, but the IPC channel always closes with it: exit then, so no emulator or component
// outlives its supervisor. unref() keeps the channel from holding a child open that wants to exit on its own.
if (process.channel) {
  process.on('disconnect', () => process.exit(0));
  process.channel.unref();
}
