// Screen-reader announcements for changes that happen without a page load (someone went live, a stream ended).

let region;

export function announce(message) {
  if (!region) {
    region = document.createElement("p");
    region.className = "visually-hidden";
    region.setAttribute("role", "status");
    region.setAttribute("aria-live", "polite");
    document.body.append(region);
  }
  // Clearing first makes a repeated identical message be announced again.
  region.textContent = "";
  setTimeout(() => { region.textContent = message; }, 50);
}
