r"""Initialisation for sufficient spiking: fluctuation-driven weights and sparse connectivity.

Deep spiking networks fall silent with the initialisations of rate networks: a LeCun-scaled
layer drives the membrane far below threshold, so the next layer gets no spikes at all.
Fluctuation-driven initialisation (Rossbroich, Gygax & Zenke 2022, "Fluctuation-driven
initialization for spiking neural network training") draws the weights so that the
membrane's mean and fluctuations put each neuron a chosen number $\xi$ of standard
deviations below threshold. For $n$ inputs firing as Poisson processes of rate $\nu$
through weights of mean $\mu_w$ and standard deviation $\sigma_w$ (Campbell's theorem):

$$ \mu_U = n \mu_w \nu \bar\epsilon, \qquad
   \sigma_U^2 = n (\sigma_w^2 + \mu_w^2) \nu \hat\epsilon, \qquad
   \vartheta - v_\text{leak} = \mu_U + \xi \sigma_U $$

with the integrals of the neuron's post-synaptic potential kernel $\epsilon(t)$ (its
membrane response to one input spike) $\bar\epsilon = \int \epsilon$,
$\hat\epsilon = \int \epsilon^2$ (`psp_integrals`, for snnx's discrete step). $\sigma_U$ is
each neuron's fluctuation over time; the neuron-to-neuron spread of the mean that fixed
random weights add is not part of it (as in the paper).

A recurrent layer splits the budget: a share `alpha` of $\mu_U$ and $\sigma_U^2$ comes from
the feed-forward input, $1 - \alpha$ from the recurrent weights (the paper's $\alpha$).
Sparse connectivity where each connection exists with probability $p$ (GeNN's
`FixedProbability`) keeps the same drive by drawing for the mean fan-in $p n$.

```python
model = snnx.init.fluctuation_driven(model, key, rate=0.02, xi=2.0)
mu_w, sigma_w = snnx.init.fluctuation_moments(snnx.LIF(tau=10.0), fan_in=100, rate=0.02)
```
"""

from ._model import fixed_probability as fixed_probability, fluctuation_driven as fluctuation_driven
from ._moments import (
    fluctuation_moments as fluctuation_moments,
    psp_integrals as psp_integrals,
    weight_moments as weight_moments,
)
