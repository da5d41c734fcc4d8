"""One blueprint per part of the site: tickets (and the landing page), auth, orders."""
