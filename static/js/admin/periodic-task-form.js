// The admin's periodic task form: the crontab field's help says the chosen schedule in words
// (what django-celery-beat's template does inline; see
// templates/admin/djcelery/change_periodictask_form.html).
const readableCrontabs = JSON.parse(document.getElementById("readable-crontabs").textContent);
const crontabHelp = JSON.parse(document.getElementById("crontab-help").textContent);

for (const field of document.querySelectorAll(".field-crontab_translation")) {
  field.style.display = "none";
}

const crontab = document.querySelector(".field-crontab");
crontab?.addEventListener("change", () => {
  const help = crontab.querySelector(".help");
  const chosen = readableCrontabs[document.getElementById("id_crontab").value];
  if (help) help.replaceChildren(crontabHelp, document.createElement("br"),
                                 `Translation: ${chosen}`);
});
