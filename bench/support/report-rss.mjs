// Loaded with `node --import` into a benchmarked child process: reports its peak resident set
// size on exit, on stderr, where the memory bench reads it.
process.on('exit', () => {
  process.stderr.write(`\nPEAK_RSS_KB=${process.resourceUsage().maxRSS}\n`);
});
