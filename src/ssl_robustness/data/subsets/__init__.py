"""Subsets: the matched pretraining subsets' plans, class order and draws (`plans`), their
long-tail shapes (`profiles`), head/medium/tail frequency tiers (`tiers`), what each arm uses
of the pool and the n-versus-classes trade-off (`tradeoff`), and the class filters that give a
larger n (`advice`). Nothing is imported here: import the module you need."""
