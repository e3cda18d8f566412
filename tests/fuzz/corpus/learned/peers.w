sluice-learned 2
model=m
peers=p1,p2
bits=8
word_ngrams=1-2
char_ngrams=3-5
query_tail=100
answer_head=100
features=query_words,meta
head=text,clean,hedge,code_ok,agree_share,distinct,sim_mean,agree1,sim1,agree2,sim2
folds=2
fold_seed=7
cv_auc=0.8
fold 0
bias=0.5
head_bias=-0.25
head_weights=1,0.5,-1,0.25,2,-1,0.5,1,0.5,0.75,0.25
nonzero=2
weights
3 0.25
17 -1.5
end
fold 1
bias=-0.5
head_bias=0.25
head_weights=0.9,0.4,-0.8,0.2,1.5,-0.5,0.4,0.8,0.4,0.6,0.2
nonzero=1
weights
200 0.125
end
