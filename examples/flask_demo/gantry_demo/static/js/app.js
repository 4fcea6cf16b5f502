// Shows the visitor's local time, proof that the script was served and executed.
document.addEventListener("DOMContentLoaded", () => {
  const clock = document.getElementById("clock");
  if (clock) {
    clock.textContent = `Loaded at ${new Date().toLocaleTimeString()}`;
    clock.hidden = false;
  }
});
