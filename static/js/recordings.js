// The Recordings card: players and downloads for everyone allowed to see it; rename and delete for the owner;
// recordings saved while the page is open are added without a reload.

import { announce } from "./announce.js";
import { api } from "./api.js";
import { formatDate, formatDuration } from "./format.js";

export class RecordingList {
  constructor(section) {
    this.section = section;
    this.owner = section.dataset.username;
    this.list = section.querySelector("[data-recording-list]");
    this.empty = section.querySelector("[data-no-recordings]");
    this.template = section.querySelector("#recording-template");
    this.list.addEventListener("click", (event) => this.onClick(event));
    this.list.addEventListener("submit", (event) => this.onSubmit(event));
  }

  has(id) {
    return this.list.querySelector(`[data-recording-id="${id}"]`) !== null;
  }

  add(recording) {
    if (this.has(recording.id)) return;
    const item = this.template.content.firstElementChild.cloneNode(true);
    item.dataset.recordingId = recording.id;
    fill(item, recording);
    this.list.prepend(item);
    this.empty.hidden = true;
    announce(`New recording: ${recording.title}.`);
  }

  // Catches up with the server, e.g. after this page stopped a stream and the socket message may come later.
  async refresh() {
    const { recordings } = await api(`/api/users/${encodeURIComponent(this.owner)}/recordings/`);
    for (const recording of recordings.reverse()) this.add(recording);
  }

  onClick(event) {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const item = button.closest("[data-recording-id]");
    const form = item.querySelector("[data-edit-form]");
    if (button.dataset.action === "edit") this.showEditor(item, form, true);
    else if (button.dataset.action === "cancel-edit") this.showEditor(item, form, false);
    else if (button.dataset.action === "delete") this.remove(item);
  }

  showEditor(item, form, open) {
    const editButton = item.querySelector("[data-action=edit]");
    form.hidden = !open;
    editButton.setAttribute("aria-expanded", String(open));
    if (open) form.elements.title.focus();
    else editButton.focus();
  }

  async onSubmit(event) {
    const form = event.target.closest("[data-edit-form]");
    if (!form) return;
    event.preventDefault();
    const item = form.closest("[data-recording-id]");
    const error = form.querySelector("[data-edit-error]");
    try {
      const recording = await api(`/api/recordings/${item.dataset.recordingId}/`, {
        method: "PATCH",
        body: { title: form.elements.title.value, description: form.elements.description.value },
      });
      fill(item, recording);
      error.hidden = true;
      this.showEditor(item, form, false);
      announce(`Recording renamed to ${recording.title}.`);
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  }

  async remove(item) {
    const title = item.querySelector("[data-field=title]").textContent;
    if (!window.confirm(`Delete the recording “${title}”? This cannot be undone.`)) return;
    try {
      await api(`/api/recordings/${item.dataset.recordingId}/`, { method: "DELETE" });
    } catch (failure) {
      window.alert(failure.message);
      return;
    }
    item.remove();
    this.empty.hidden = this.list.children.length > 0;
    this.section.querySelector("h2").focus();
    announce(`Recording “${title}” deleted.`);
  }
}

function fill(item, recording) {
  const field = (name) => item.querySelector(`[data-field="${name}"]`);
  field("title").textContent = recording.title;
  field("description").textContent = recording.description;
  field("description").hidden = !recording.description;
  field("denoised").hidden = !recording.denoise_enabled;
  field("duration").textContent = formatDuration(recording.duration);
  field("created_at").dateTime = recording.created_at;
  field("created_at").textContent = formatDate(recording.created_at);
  const player = field("player");
  if (player.getAttribute("src") !== recording.url) player.src = recording.url;
  player.setAttribute("aria-label", `Play ${recording.title}`);
  item.querySelector("[data-action=edit]")?.setAttribute("aria-label", `Rename ${recording.title}`);
  item.querySelector("[data-action=delete]")?.setAttribute("aria-label", `Delete ${recording.title}`);
  field("download").href = `${recording.url}?download=1`;
  const form = item.querySelector("[data-edit-form]");
  if (form) {
    form.elements.title.value = recording.title;
    form.elements.description.value = recording.description;
  }
}
