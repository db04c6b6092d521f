// Starts Swagger UI on /docs. A file, not an inline script: the CSP forbids inline code.
window.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
