"""Flow-matching trainers: naive flow matching, VFP and VFP single expert (see ``specs``)."""
